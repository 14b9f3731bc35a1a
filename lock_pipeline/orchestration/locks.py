"""Tuya locks and the 1:1 listing -> lock map, with the blocking checks that guard it and the admin's decisions."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
    asset_check,
    job,
    op,
)
from pydantic import Field, field_validator

from lock_pipeline.mapping import locks as lock_store
from lock_pipeline.mapping import store
from lock_pipeline.orchestration.resources import ClockResource, PostgresResource, SettingsResource, TuyaResource
from lock_pipeline.settings import UNMAPPED_LISTING_WITHIN
from lock_pipeline.tuya.client import TuyaError
from lock_pipeline.vocabulary import RunKind, RunTag

# Tuya categories of door locks (ms = lock; jtmspro/jtmsbh and friends are variants).
LOCK_CATEGORIES = frozenset({"ms", "jtmspro", "jtmsbh", "mk", "bxx", "gyms", "videolock"})
ARRIVAL_HORIZON_DAYS = UNMAPPED_LISTING_WITHIN.days


@asset(group_name="locks", kinds={"postgres"},
       description="Door locks in the Tuya cloud project (pipeline.locks): name, online state, category. "
                   "A lock absent from Tuya's answer is flagged, never deleted.")
def tuya_locks(context: AssetExecutionContext, tuya: TuyaResource, postgres: PostgresResource,
               clock: ClockResource) -> MaterializeResult:
    try:
        with tuya.client() as client:
            devices = client.list_devices()
    except TuyaError as error:
        raise Failure(description=f"listing devices from Tuya failed, nothing changed: {error}") from error
    locks = [d for d in devices if d.category in LOCK_CATEGORIES]
    context.log.info(f"Tuya reported {len(devices)} devices, {len(locks)} of them locks")
    with postgres.engine.begin() as conn:
        figures = lock_store.store_locks(conn, locks, clock.now())
    return MaterializeResult(metadata={
        **figures,
        "online": sum(1 for d in locks if d.online),
        "offline": sum(1 for d in locks if not d.online),
        "ignored_non_locks": len(devices) - len(locks),
    })


@asset(group_name="locks", kinds={"postgres"}, deps=["stays_listings", tuya_locks],
       description="One lock per listing (pipeline.lock_mappings): fuzzy suggestions, auto-confirmed only when "
                   "clearly ahead; an admin's decision always survives.")
def accommodation_lock_mappings(context: AssetExecutionContext, postgres: PostgresResource, clock: ClockResource,
                                settings: SettingsResource) -> MaterializeResult:
    config = settings.get()
    with postgres.engine.begin() as conn:
        summary = store.refresh_suggestions(
            conn, clock.now(), auto_confirm_score=config.match_auto_confirm_score,
            min_margin=config.match_min_margin, run_id=context.run.run_id,
        )
        counts = store.mapping_counts(conn)
    context.log.info(f"mappings: {counts}; auto-confirmed now: {len(summary.auto_confirmed)}")
    return MaterializeResult(metadata={
        "confirmed": counts.get("confirmed", 0),
        "suggested": counts.get("suggested", 0),
        "unmatched": counts.get("unmatched", 0),
        "auto_confirmed_now": len(summary.auto_confirmed),
        "decisions_kept": summary.kept,
    })


@asset_check(asset=accommodation_lock_mappings, blocking=True,
             description="One lock per listing and one listing per lock among confirmed mappings.")
def one_lock_per_listing_and_listing_per_lock(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.engine.connect() as conn:
        offending = store.one_to_one_violations(conn)
    return _failing_rows(offending, "violations")


@asset_check(asset=accommodation_lock_mappings, blocking=True,
             description=f"Every listing with a guest arriving or staying in the next {ARRIVAL_HORIZON_DAYS} days "
                         "has a confirmed lock (else that guest gets no PIN).")
def listings_with_arrivals_have_a_confirmed_lock(postgres: PostgresResource, clock: ClockResource) -> AssetCheckResult:
    with postgres.engine.connect() as conn:
        offending = store.listings_with_arrivals_but_no_lock(conn, clock.now(), ARRIVAL_HORIZON_DAYS)
    return _failing_rows(offending, "listings_without_lock")


@asset_check(asset=accommodation_lock_mappings, blocking=True,
             description="Every confirmed mapping points at a lock Tuya still reports.")
def mapped_locks_exist_in_tuya(postgres: PostgresResource) -> AssetCheckResult:
    with postgres.engine.connect() as conn:
        offending = store.mapped_locks_missing_from_tuya(conn)
    return _failing_rows(offending, "missing_locks")


MAPPING_CHECKS = [one_lock_per_listing_and_listing_per_lock, listings_with_arrivals_have_a_confirmed_lock,
                  mapped_locks_exist_in_tuya]


class MappingDecision(Config):
    """An admin's decision about one listing's lock (validated before the run starts)."""

    action: str = Field(description="confirm | reject | set | unmap")
    listing: str = Field(description="the listing's short code (e.g. DB09I) or Stays _id")
    lock_id: str | None = Field(default=None, description="Tuya device id; required for `set`")
    decided_by: str = Field(default="dagster-ui", description="who decided, for the audit trail")

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value not in store.DECISIONS:
            raise ValueError(f"action must be confirm, reject, set or unmap, not {value!r}")
        return value

    @field_validator("listing")
    @classmethod
    def _listing_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("listing is empty: give the listing's code, e.g. DB09I")
        return value.strip()


@op(description="Apply an admin's mapping decision; it survives every later materialization.")
def decide_mapping(context: OpExecutionContext, config: MappingDecision, postgres: PostgresResource,
                   clock: ClockResource) -> None:
    try:
        with postgres.engine.begin() as conn:
            outcome = store.decide(conn, config.action, config.listing, config.lock_id, config.decided_by,
                                   clock.now(), context.run.run_id)
    except store.MappingError as error:
        raise Failure(description=str(error)) from error
    context.log.info(outcome)


@job(tags={RunTag.KIND: RunKind.ADMIN},
     description="Confirm, reject, set or unmap a listing's lock (Launchpad config: action, listing, lock_id).")
def mapping_decision_job():
    decide_mapping()


def _failing_rows(offending: list[dict], count_name: str) -> AssetCheckResult:
    """A blocking check result that names the offending rows in its metadata."""
    return AssetCheckResult(
        passed=not offending, severity=AssetCheckSeverity.ERROR,
        metadata={count_name: len(offending), "offending_rows": MetadataValue.json(_jsonable(offending))},
    )


def _jsonable(rows: list[dict]) -> list[dict]:
    return [{k: (v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)) for k, v in row.items()} for row in rows]
