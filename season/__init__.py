"""The season simulator: the test rig that runs the real pipeline through a seeded season with faults.

Not part of the installed product (the sandboxes it drives are: the embedded default runs on them).
Run from the repository root: ``python -m season --days 60 --listings 50 --seed 1``.
"""
