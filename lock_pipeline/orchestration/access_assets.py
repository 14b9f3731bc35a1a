"""The locks' own truth against the database: the access invariants as asset checks."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)
from sqlalchemy import text

from lock_pipeline.access import store as access_store
from lock_pipeline.access.audit import KnownCode, audit_lock
from lock_pipeline.access.planning import desired_access
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PipelineConfig,
    PostgresResource,
    TuyaResource,
    access_policy,
)
from lock_pipeline.tuya.client import TuyaError

ASSET = "lock_pin_audit"
CHECKS = [
    AssetCheckSpec("no_pin_valid_outside_its_stay", asset=ASSET, blocking=True,
                   description="No PIN on a lock is valid outside its own stay's access window (the lock's list vs Postgres)."),
    AssetCheckSpec("every_stay_in_its_window_has_an_active_pin", asset=ASSET,
                   description="Every confirmed stay whose access window is open has a PIN active on its lock."),
    AssetCheckSpec("no_orphan_pins", asset=ASSET,
                   description="No PIN named by the pipeline is left on a lock without a known stay (orphans are revoked)."),
]


@asset(name=ASSET, group_name="access", kinds={"postgres"}, deps=["accommodation_lock_mappings"], check_specs=CHECKS,
       description="Reads every mapped lock's PIN list from Tuya and compares it with pipeline.access_codes; "
                   "revokes orphans the pipeline named; never touches PINs it did not create.")
def lock_pin_audit(context: AssetExecutionContext, postgres: PostgresResource, tuya: TuyaResource,
                   clock: ClockResource, pipeline_config: PipelineConfig):
    now, policy = clock.now(), access_policy(pipeline_config)
    with postgres.engine.connect() as conn:
        stays, _live = access_store.load_for_planning(conn, now, policy)
        devices = conn.execute(text("""
            SELECT device_id FROM pipeline.lock_mappings WHERE status = 'confirmed' AND device_id IS NOT NULL
            UNION SELECT DISTINCT device_id FROM pipeline.access_codes WHERE state NOT IN ('revoked', 'cancelled')
        """)).scalars().all()
        codes = [KnownCode(**row) for row in conn.execute(text("""
            SELECT c.code_id, c.reservation_id, r.code AS reservation_code, c.state, c.lock_label, c.valid_from,
                   c.valid_until, c.tuya_password_id, c.device_id
            FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
            WHERE c.device_id = ANY(:devices)
        """), {"devices": list(devices)}).mappings()] if devices else []
    violations, orphans_revoked, unreachable, foreign = [], [], [], 0
    with tuya.client() as client:
        for device_id in sorted(devices):
            try:
                with access_store.lock_device(postgres.engine, device_id):
                    on_lock = client.list_temp_passwords(device_id)
                    audit = audit_lock(device_id, on_lock, [c for c in codes if c.device_id == device_id], stays, now, policy)
                    for orphan in audit.orphans:
                        client.delete_temp_password(device_id, orphan.password_id)
                        orphans_revoked.append({"lock_id": device_id, "password_id": orphan.password_id, "name": orphan.name})
            except TuyaError as error:
                unreachable.append({"lock_id": device_id, "error": str(error)})
                continue
            violations.extend({"lock_id": device_id, **v} for v in audit.violations)
            foreign += audit.foreign
    if orphans_revoked:
        context.log.warning(f"revoked {len(orphans_revoked)} orphan PIN(s) the pipeline had named")
    missing = _stays_without_active_pin(postgres, stays, now, policy)
    yield MaterializeResult(metadata={
        "locks_audited": len(devices) - len(unreachable), "locks_unreachable": MetadataValue.json(unreachable),
        "foreign_pins_left_alone": foreign, "orphans_revoked": len(orphans_revoked),
    })
    yield AssetCheckResult(check_name="no_pin_valid_outside_its_stay", passed=not violations,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"violations": len(violations), "offending_rows": MetadataValue.json(violations)})
    yield AssetCheckResult(check_name="every_stay_in_its_window_has_an_active_pin", passed=not missing,
                           severity=AssetCheckSeverity.ERROR,
                           metadata={"stays_without_pin": len(missing), "offending_rows": MetadataValue.json(missing)})
    yield AssetCheckResult(check_name="no_orphan_pins", passed=True, severity=AssetCheckSeverity.WARN,
                           metadata={"orphans_revoked": MetadataValue.json(orphans_revoked)})


def _stays_without_active_pin(postgres: PostgresResource, stays, now, policy) -> list[dict]:
    open_now = {rid: stay for rid, stay in stays.items()
                if (d := desired_access(stay, now, policy)) is not None and d.window.contains(now)}
    if not open_now:
        return []
    with postgres.engine.connect() as conn:
        states = dict(conn.execute(text("""
            SELECT reservation_id, string_agg(state, ',') FROM pipeline.access_codes
            WHERE reservation_id = ANY(:ids) AND state NOT IN ('revoked', 'cancelled') GROUP BY reservation_id
        """), {"ids": list(open_now)}).all())
    return [{"reservation_code": stay.code, "lock_id": stay.device_id, "code_states": states.get(rid, "none")}
            for rid, stay in open_now.items() if "active" not in (states.get(rid) or "").split(",")]
