"""``python -m season``: run seeded seasons and print the report."""

import sys

from season.run import main

sys.exit(main())
