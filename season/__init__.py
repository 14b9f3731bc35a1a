"""A simulated season with faults: nobody locked out, nobody let in, nothing lost.

The test rig, apart from the product: not part of the installed package (the sandboxes it drives
are, since the embedded default runs on them). Run from the repository root with ``python -m
season --days 60 --listings 50 --seed 1`` (or ``scripts/season``); it starts its own embedded
Postgres unless ``--database-url`` is given.

A seeded, reproducible season: L listings with a Tuya lock each, bookings made months to
minutes ahead (same-day turnovers, last-minute arrivals, modifications earlier / later /
longer / shorter / to another listing, cancellations before and after the PIN exists,
maintenance blocks), applied to the sandbox Stays at their simulated times. The real
pipeline runs against it on a controlled clock (driver.py): every step (30 min by default) is
what the schedule and the sensor do, a sync run and sensor ticks with the runs they ask for.
Faults are scheduled by the same seed: Stays down, 5xx bursts, empty feeds, malformed records,
slow answers; Tuya throttling, token expiry, 5xx, timeouts, HTML and malformed answers, locks
offline (some through an arrival), a lock's PIN storage full; runs killed at chosen points (also
between the Tuya call and the commit), Postgres restarted mid-run, the daemon stopped for hours.

Truth is sampled at every step, after the pipeline acted, from the sandboxes themselves: the
Tuya sandbox says which PINs would open which door now (its own validity windows and phases),
the Stays sandbox holds the calendar. So the minute figures have the step's resolution: an
interval shorter than one step does not show (a booking made between two syncs is seen at the
next step, as the 30-minute schedule would).

The modules, by concern:

- config.py: what a season is, and the product values it plans with (read from lock_pipeline.settings).
- plan.py (with bookings.py, changes.py, names.py): every booking and change, decided by the seed.
- faults/: one small class per fault kind, its registry and schedule, and the checkpoint observer.
- truth.py: what Stays holds now; measure.py: the doors sampled every step; compare.py: the
  database and the locks at the end; result.py: the figures the targets are about.
- driver.py: the real pipeline in process on the season's clock (also the tests' harness).
- run.py: the step loop; report.py: the report; __main__.py: the command line.
"""
