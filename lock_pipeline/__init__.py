"""lock_pipeline: Stays reservations -> Postgres -> listing/lock map -> PIN actions -> Tuya locks."""
