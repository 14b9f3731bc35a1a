"""The Dagster wiring, in one place: resources, assets, checks, jobs, schedules, sensors.

The domain packages (stays, storage, mapping, access, tuya) know nothing of Dagster.
"""
