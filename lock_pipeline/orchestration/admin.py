"""What the admin reads in the Dagster UI: the day board and each stay's history.

- ``day_board``: an asset whose materialization shows today's and tomorrow's arrivals and
  departures as a Markdown table (admin.day_board). The syncs materialize it; every PIN run,
  webhook run and delivery run logs a fresh materialization of it at its end, so it is never
  older than the last change.
- ``stay_history``: an asset partitioned by stay code (a dynamic partition per stay). Every PIN
  action, Stays change applied from a webhook, and delivery attempt logs a materialization of the
  stay's partition, whether it ran alone or in a batch (batched runs carry other tags, so the run
  list filtered by ``lock_pipeline/stay=EV23J`` misses them). Assets > stay_history > Partitions >
  EV23J shows the latest entry, with ``history``: the stay's whole history as a table, each entry
  linking to its run; "View all historical events" lists every entry. It is a record, not data:
  nothing reads it, and it has no Materialize button (an external asset).

Neither ever carries a PIN: the board shows masked PINs, the history says what happened.
"""

from __future__ import annotations

import re

from dagster import (
    AssetMaterialization,
    AssetSpec,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    asset,
)

from lock_pipeline.access import store as access_store
from lock_pipeline.admin_tables import render_day_board, render_stay_history, summary
from lock_pipeline.orchestration.resources import ClockResource, PostgresResource, SettingsResource
from lock_pipeline.storage import admin_views

ADMIN_GROUP = "admin"
DAY_BOARD = "day_board"
STAY_HISTORY = "stay_history"
STAY_PARTITIONS = DynamicPartitionsDefinition(name="stays")
_PARTITION_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


# ====================================================================== the day board

def day_board_metadata(postgres: PostgresResource, clock: ClockResource, settings: SettingsResource) -> dict:
    now, zone = clock.now(), settings.get().timezone
    with postgres.engine.begin() as conn:
        rows = admin_views.day_board(conn, now)
    return {
        "day": MetadataValue.md(render_day_board(rows, now, zone)),
        "summary": summary(rows),
        "arrivals_today": sum(1 for r in rows if r["day_label"] == "today" and r["movement"] == "arrival"),
        "departures_today": sum(1 for r in rows if r["day_label"] == "today" and r["movement"] == "departure"),
        "stays_needing_a_person": len({r["reservation_code"] for r in rows if r["needs_a_person"]}),
        "as_of": now.isoformat(),
    }


@asset(name=DAY_BOARD, group_name=ADMIN_GROUP, kinds={"postgres"},
       deps=["stays_near_term_reservations", "stays_reservations"],
       description="Today's and tomorrow's arrivals and departures per listing (the account's zone): guest, "
                   "check-in/out, code state, masked PIN, delivery, what needs a person. Open the latest "
                   "materialization's `day` to read the day. Refreshed by every sync, PIN run and delivery run.")
def day_board(postgres: PostgresResource, clock: ClockResource, settings: SettingsResource) -> MaterializeResult:
    return MaterializeResult(metadata=day_board_metadata(postgres, clock, settings))


def log_day_board(context: OpExecutionContext, postgres: PostgresResource, clock: ClockResource,
                  settings: SettingsResource) -> None:
    """A fresh materialization of the day board at the end of a run that changed what it shows."""
    try:
        metadata = day_board_metadata(postgres, clock, settings)
    except Exception as error:  # noqa: BLE001 - the board must never fail the PIN work it reports on
        context.log.warning(f"the day board was not refreshed: {type(error).__name__}: {str(error)[:200]}")
        return
    context.log_event(AssetMaterialization(asset_key=DAY_BOARD, metadata=metadata,
                                           description="refreshed at the end of this run"))


# ====================================================================== one stay's history

stay_history = AssetSpec(
    STAY_HISTORY, group_name=ADMIN_GROUP, partitions_def=STAY_PARTITIONS, kinds={"postgres"},
    description="One partition per stay code. Every PIN action (alone or in a batch), Stays change applied from a "
                "webhook and code delivery records an entry on the stay's partition, with its run. Partitions > the "
                "stay's code: the latest entry, and `history`, the stay's whole history with links to the runs.")


class StayHistory:
    """Adds entries to stays' partitions of ``stay_history`` from one op (never a PIN: callers pass
    outcomes and reasons, not values). Call :meth:`add` after the change is committed: each entry
    carries the stay's history as it then stands (pipeline.access_code_events)."""

    def __init__(self, context: OpExecutionContext, postgres: PostgresResource, settings: SettingsResource) -> None:
        self.context = context
        self.engine = postgres.engine
        self.zone = settings.get().timezone

    def add(self, reservation_code: str, *, what: str, outcome: str, detail: str = "",
            lock_id: str | None = None) -> None:
        context = self.context
        if not _PARTITION_KEY.match(reservation_code or ""):
            context.log.warning(f"stay code {reservation_code!r} cannot be a partition key: not in stay_history")
            return
        what, outcome = str(what), str(outcome)  # plain strings: Dagster refuses enum members
        try:
            with self.engine.connect() as conn:
                rows = access_store.stay_history(conn, reservation_code)
            metadata = {"what": what, "outcome": outcome, "detail": str(detail)[:500],
                        "history": MetadataValue.md(render_stay_history(rows, self.zone))}
            if lock_id:
                metadata["lock_id"] = lock_id
            context.instance.add_dynamic_partitions(STAY_PARTITIONS.name, [reservation_code])
            context.log_event(AssetMaterialization(asset_key=STAY_HISTORY, partition=reservation_code,
                                                   metadata=metadata, description=f"{what}: {outcome}"))
        except Exception as error:  # noqa: BLE001 - the history must never fail (or hide the error of) the work
            context.log.warning(f"{reservation_code}: {what} not added to stay_history ({type(error).__name__})")
