"""A listing's and a lock's own settings from the Dagster UI: two jobs whose Launchpad config is validated
like the command line's flags, applied through the same functions (lock_pipeline/overrides.py)."""

from dagster import Config, Failure, OpExecutionContext, job, op
from pydantic import Field, field_validator

from lock_pipeline import overrides
from lock_pipeline.orchestration.resources import ClockResource, PostgresResource
from lock_pipeline.vocabulary import ChangeVia, RunKind, RunTag


def _given(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value.strip()


class ListingSettingsDecision(Config):
    """Set a listing's own settings and/or make it follow the account setting again (validated before the
    run changes anything; every change is recorded with this run's id)."""

    listing: str = Field(description="the listing's short code (e.g. DB09I, see admin.listings) or Stays _id")
    lead_minutes: int | None = Field(default=None, description="access opens this long before check-in (0..1440)")
    grace_minutes: int | None = Field(default=None, description="access ends this long after check-out (0..1440)")
    time_zone: str | None = Field(default=None, description="IANA zone, e.g. America/Manaus")
    check_in_time: str | None = Field(default=None, description="HH:MM, used when Stays sends no check-in time")
    check_out_time: str | None = Field(default=None, description="HH:MM, used when Stays sends no check-out time")
    reset: list[str] = Field(default=[], description="settings that follow the account setting again: time_zone, "
                                                      "check_in_time, check_out_time, lead_minutes, grace_minutes")
    decided_by: str = Field(default="dagster-ui", description="who decided, for the audit trail")

    @field_validator("listing", "decided_by")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        try:
            return _given(value)
        except ValueError:
            raise ValueError("is empty: give the listing's code (e.g. DB09I) and who decides") from None

    @field_validator("lead_minutes", "grace_minutes")
    @classmethod
    def _minutes(cls, value: int | None, info) -> int | None:
        return None if value is None else overrides.parse_minutes(value, info.field_name.replace("_", " "))

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else overrides.parse_time_zone(value)

    @field_validator("check_in_time", "check_out_time")
    @classmethod
    def _clock_time(cls, value: str | None, info) -> str | None:
        if value is None:
            return None
        return f"{overrides.parse_clock_time(value, info.field_name.replace('_', '-')):%H:%M}"

    @field_validator("reset")
    @classmethod
    def _settings(cls, value: list[str]) -> list[str]:
        try:
            return [overrides.setting_name(name) for name in value]
        except overrides.OverrideError as error:
            raise ValueError(str(error)) from None


@op(description="Apply a listing's settings decision (lock_pipeline/overrides.py), recorded with this run's id.")
def decide_listing_settings(context: OpExecutionContext, config: ListingSettingsDecision, postgres: PostgresResource,
                            clock: ClockResource) -> None:
    values = {name: getattr(config, name) for name in overrides.LISTING_SETTINGS}
    _apply(context, postgres, lambda conn: overrides.decide_listing(
        conn, config.listing, values, config.reset, actor=config.decided_by, now=clock.now(), via=ChangeVia.DAGSTER,
        run_id=context.run.run_id))


@job(tags={RunTag.KIND: RunKind.ADMIN},
     description="Set or reset a listing's own settings (Launchpad config: listing, lead_minutes, grace_minutes, "
                 "time_zone, check_in_time, check_out_time, reset); what it leaves unset follows the account.")
def listing_settings_job():
    decide_listing_settings()


class LockSettingsDecision(Config):
    """Set a lock's PIN length (validated before the run changes anything; recorded with this run's id)."""

    lock_id: str = Field(description="Tuya device id (see admin.locks)")
    pin_length: int = Field(description="6 for Zigbee and Bluetooth locks, 7 for Wi-Fi locks, or 8")
    decided_by: str = Field(default="dagster-ui", description="who decided, for the audit trail")

    @field_validator("lock_id", "decided_by")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        try:
            return _given(value)
        except ValueError:
            raise ValueError("is empty: give the lock's Tuya device id (admin.locks) and who decides") from None

    @field_validator("pin_length")
    @classmethod
    def _length(cls, value: int) -> int:
        return overrides.parse_pin_length(value)


@op(description="Apply a lock's settings decision (lock_pipeline/overrides.py), recorded with this run's id.")
def decide_lock_settings(context: OpExecutionContext, config: LockSettingsDecision, postgres: PostgresResource,
                         clock: ClockResource) -> None:
    _apply(context, postgres, lambda conn: overrides.set_lock(
        conn, config.lock_id, config.pin_length, actor=config.decided_by, now=clock.now(), via=ChangeVia.DAGSTER,
        run_id=context.run.run_id))


def _apply(context: OpExecutionContext, postgres: PostgresResource, decide) -> None:
    """One decision in one transaction; a refused one fails the run saying why, having changed nothing."""
    try:
        with postgres.engine.begin() as conn:
            outcome = decide(conn)
    except overrides.OverrideError as error:
        raise Failure(description=f"not changed: {error}") from error
    context.log.info(outcome)


@job(tags={RunTag.KIND: RunKind.ADMIN},
     description="Set a lock's PIN length (Launchpad config: lock_id, pin_length); the next new PIN on it has "
                 "that many digits and its failed PINs are retried at once.")
def lock_settings_job():
    decide_lock_settings()
