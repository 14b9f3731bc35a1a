"""Simulation of the real pipeline on a controlled clock: the driver (sync runs, sensor ticks,
the runs they ask for) and the seeded season simulator with faults (``python -m
lock_pipeline.simulation.season``)."""
