"""PIN actions: which PIN each stay needs on which lock, and when (pure), and doing it (I/O)."""
