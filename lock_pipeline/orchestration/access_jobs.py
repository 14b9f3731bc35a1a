"""PIN action runs: one run carries one or many actions, each its own step and audit event."""

from dagster import (
    Backoff,
    Config,
    DynamicOut,
    DynamicOutput,
    Failure,
    OpExecutionContext,
    RetryPolicy,
    in_process_executor,
    job,
    op,
)
from pydantic import Field, field_validator

from lock_pipeline.access import store as access_store
from lock_pipeline.access.executor import AccessExecutor
from lock_pipeline.access.planning import Action, AccessPolicy, plan_actions
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PinVaultResource,
    PipelineConfig,
    PostgresResource,
    TuyaResource,
    access_policy,
)
from lock_pipeline.tuya.client import TuyaError

# As the seed: 3 retries after 2 s, 4 s, 8 s. Then the code is `failed`, retried on a bounded
# schedule (access/planning.py RETRY_DELAYS), and a person can reprocess it.
PIN_RETRY_POLICY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL)


class PinActionConfig(Config):
    kind: str
    reservation_id: str
    reservation_code: str
    listing_id: str
    device_id: str
    valid_from: str
    valid_until: str
    code_id: int | None = None
    reason: str = ""
    version: str = "0"


class PinActionsConfig(Config):
    actions: list[PinActionConfig] = Field(description="planned by the access sensor")


@op(out=DynamicOut(dict), description="Fan the run's actions out, one step each.")
def planned_pin_actions(config: PinActionsConfig):
    for index, action in enumerate(config.actions):
        yield DynamicOutput(action.model_dump(), mapping_key=f"{action.kind}_{_key_safe(action.reservation_code)}_{index}")


@op(retry_policy=PIN_RETRY_POLICY, tags={"lock_pipeline/tuya": "1"},
    description="Generate, confirm or revoke one PIN on its lock (exactly once, audited).")
def perform_pin_action(context: OpExecutionContext, planned: dict, postgres: PostgresResource,
                       tuya: TuyaResource, pin_vault: PinVaultResource, clock: ClockResource,
                       pipeline_config: PipelineConfig) -> str:
    action = Action.from_config(planned)
    final_attempt = context.retry_number >= PIN_RETRY_POLICY.max_retries
    with tuya.client() as client:
        executor = AccessExecutor(postgres.engine, client, pin_vault.vault(), now=clock.now,
                                  policy=access_policy(pipeline_config), run_id=context.run_id)
        try:
            outcome = executor.perform(action, final_attempt=final_attempt)
        except TuyaError as error:
            context.log.warning(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {error} "
                                f"(attempt {context.retry_number + 1} of {PIN_RETRY_POLICY.max_retries + 1})")
            raise
    context.log.info(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {outcome.result} "
                     f"({outcome.detail}){f'; Tuya password id {outcome.password_id}' if outcome.password_id else ''}")
    return outcome.result


@job(executor_def=in_process_executor, tags={"lock_pipeline/kind": "pin"},
     description="PIN actions planned by the access sensor; one process however many actions.")
def pin_actions_job():
    planned_pin_actions().map(perform_pin_action)


class ReprocessConfig(Config):
    reservation_code: str = Field(description="the stay's code as people see it, e.g. EV23J")

    @field_validator("reservation_code")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value or len(value) > 40 or not value.replace("-", "").isalnum():
            raise ValueError(f"{value!r} is not a stay code: use the code shown in admin.reservations, e.g. EV23J")
        return value


@op(description="Restart a stay's PIN work now: failed codes get a fresh retry budget, due work runs at once.")
def reprocess_stay(context: OpExecutionContext, config: ReprocessConfig, postgres: PostgresResource,
                   tuya: TuyaResource, pin_vault: PinVaultResource, clock: ClockResource,
                   pipeline_config: PipelineConfig) -> None:
    policy = access_policy(pipeline_config)
    with postgres.engine.begin() as conn:
        reservation_id = access_store.find_stay_by_code(conn, config.reservation_code)
        if reservation_id is None:
            raise Failure(description=f"no stay with code {config.reservation_code!r}: see admin.reservations")
        reset = reset_for_reprocess(conn, reservation_id, clock.now(), context.run_id)
        stay, codes = access_store.load_stay(conn, reservation_id)
    actions = due_now_for_stay(stay, codes, clock.now(), policy)
    context.log.info(f"reprocess {config.reservation_code}: {reset} failed code(s) reset, {len(actions)} action(s) due")
    with tuya.client() as client:
        executor = AccessExecutor(postgres.engine, client, pin_vault.vault(), now=clock.now, policy=policy,
                                  run_id=context.run_id)
        for action in actions:
            outcome = executor.perform(action, final_attempt=True)
            context.log.info(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {outcome.result} ({outcome.detail})")
        # A PIN created just now is pending until its phase is read: read it in this run, as the
        # sensor's next tick would, so the person who asked sees where the PIN really is.
        with postgres.engine.connect() as conn:
            stay, codes = access_store.load_stay(conn, reservation_id)
        for action in due_now_for_stay(stay, codes, clock.now(), policy):
            if action.kind != "confirm":
                continue
            outcome = executor.perform(action, final_attempt=True)
            context.log.info(f"{action.kind} {action.reservation_code} on lock {action.device_id}: {outcome.result} ({outcome.detail})")


def reset_for_reprocess(conn, reservation_id: str, now, run_id: str | None) -> int:
    from sqlalchemy import text

    reset = conn.execute(text("""
        UPDATE pipeline.access_codes SET attempts = 0, next_attempt_at = :now, updated_at = :now - interval '1 day',
            last_run_id = :run
        WHERE reservation_id = :r AND state IN ('failed', 'programming', 'revoking')
        RETURNING code_id, device_id
    """), {"now": now, "run": run_id, "r": reservation_id}).all()
    for code_id, device_id in reset:  # the retry schedule restarts from here (access_store.failed_runs_since_reset)
        access_store.record_event(conn, code_id=code_id, reservation_id=reservation_id, device_id=device_id,
                                  action="reprocess", outcome="reset", run_id=run_id, at=now,
                                  detail="retry budget reset by reprocess")
    return len(reset)


def due_now_for_stay(stay, codes, now, policy: AccessPolicy) -> list[Action]:
    if stay is None:
        return []
    return plan_actions({stay.reservation_id: stay}, codes, now, policy).actions


@job(executor_def=in_process_executor, tags={"lock_pipeline/kind": "reprocess", "lock_pipeline/tuya": "1"},
     description="Reprocess one stay (Launchpad config: reservation_code).")
def reprocess_stay_job():
    reprocess_stay()


def _key_safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)[:40]
