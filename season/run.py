"""One planned season, run step by step against the real pipeline.

Every step (30 min by default) is what the schedule and the sensor do: a sync run, then sensor
ticks with the runs they ask for (season/driver.py runs them in process on the season's clock).
Before the step, the faults due start (and those over end) and the plan's bookings and changes
reach Stays; after it, the measurement samples the doors.
"""

from __future__ import annotations

import sys
import time as wall
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from season.compare import compare_database
from season.config import SeasonConfig, season_settings
from season.driver import PipelineDriver
from season.faults import FAULTS, FaultPoints, FaultSpec, PostgresFault, Undo, World
from season.faults.process import account_for_checkpoint_faults
from season.measure import Measurement
from season.plan import SeasonPlan, build_plan
from season.result import SeasonResult
from season.truth import Truth


class Season:
    """Runs one planned season against the real pipeline and measures it."""

    def __init__(self, plan: SeasonPlan, database_url: str, workdir: Path) -> None:
        self.plan = plan
        self.config = plan.config
        self.database_url = database_url
        self.workdir = Path(workdir)
        self.truth = Truth(plan)
        self.result = SeasonResult(plan.config.seed, plan.config.days, plan.config.listings, plan.config.step_minutes)

    def run(self) -> SeasonResult:
        started = wall.monotonic()
        config = self.config
        for b in self.plan.bookings.values():
            if b.created_at < config.begin:
                self.truth.add(b, config.begin)
        postgres = PostgresFault(self.database_url, config.postgres_fault)
        with ExitStack() as stack:
            driver = PipelineDriver(self.database_url, self.plan.seed, self.workdir, config.begin,
                                    settings=season_settings(self.workdir, write_back=config.write_back),
                                    stays_timeout=config.stays_timeout, tuya_timeout=config.tuya_timeout,
                                    quiet=True, keep_runs=False,
                                    step_retry_delay=0.02 if config.fast_step_retries else None,
                                    webhooks=config.webhooks)
            stack.callback(driver.close)
            stack.callback(postgres.dispose)
            self.driver = driver
            points = stack.enter_context(FaultPoints(postgres, lambda: driver.now).installed())
            self.world = World(self.plan, driver.stays, driver.tuya, points, self.truth, self.result, driver=driver)
            self.measure = Measurement(self.plan, self.truth, self.world, driver, self.result)
            self._finish(self._steps())
        self.result.wall_seconds = wall.monotonic() - started
        return self.result

    def _steps(self) -> list[tuple[datetime, Undo]]:
        """Every step of the season; returns the undos of the faults still on at its end."""
        config, driver = self.config, self.driver
        events = list(self.plan.events)
        faults = list(self.plan.faults)
        ends: list[tuple[datetime, Undo]] = []
        previous: datetime | None = None
        for k in range(config.steps + 1):
            now = config.begin + k * config.step
            driver.move_to(now)
            for _until, undo in [e for e in ends if e[0] <= now]:
                undo()
            ends = [e for e in ends if e[0] > now]
            while faults and faults[0].at <= now:
                spec = faults.pop(0)
                undo = self._start_fault(spec, now)
                if undo is not None:
                    ends.append((spec.until, undo))
            while events and events[0].at <= now:
                self.truth.apply(events.pop(0), now, driver.stays)
            saw = self._pipeline_step(previous) if self.world.daemon_up else False
            if self.world.daemon_up:
                previous = now
            self.measure.sample(now, saw)
            if k and k % (24 * 60 // config.step_minutes) == 0:
                driver.renew_instance()
                if config.progress:
                    print(f"  day {k * config.step_minutes // 1440}: {self._progress()}", file=sys.stderr, flush=True)
        return ends

    def _start_fault(self, spec: FaultSpec, now: datetime) -> Undo | None:
        fault = FAULTS[spec.kind](spec)
        self.result.faults[spec.kind] += 1
        if fault.fired_at_start:
            self.result.faults_fired[spec.kind] += 1
        return fault.start(self.world, now)

    def _pipeline_step(self, previous: datetime | None) -> bool:
        """What the daemon does in one step: the webhook sensor's run for what Stays announced, the
        schedules' syncs (the near-term one every step, the full one on its cadence), then the access
        sensor's ticks. True when the near-term sync read Stays."""
        if self.config.webhooks:
            self.result.webhook_runs += len(self.driver.deliver_webhooks())
        results = self.driver.scheduled_syncs(previous)
        self.result.syncs += len(results)
        self.result.syncs_failed += sum(1 for r in results if not r.success)
        read = _materialized(results[0], "stays_near_term_reservations")
        for fault in self.world.after_next_sync:  # Tuya faults meant for the PIN runs rather than the sync
            fault.inject(self.world)
        self.world.after_next_sync = []
        for _ in range(self.config.max_ticks_per_step):
            if not self.driver.tick():
                break
        if self.config.write_back:  # the delivery sensor (every 15 s): a stay's later events wait behind earlier ones
            for _ in range(self.config.max_ticks_per_step):
                delivered = self.driver.deliver()
                self.result.delivery_runs += len(delivered)
                if not delivered:
                    break
        return read and not self.world.empty_feed

    def _finish(self, ends: list[tuple[datetime, Undo]]) -> None:
        """Heal every fault, let the pipeline settle, then compare the database with the truth."""
        for _until, undo in ends:
            undo()
        self.world.after_next_sync = []
        self.world.points.armed.clear()
        self.driver.tuya.clear_faults()
        account_for_checkpoint_faults(self.world, self.plan.faults)
        end = self.config.end + self.config.step
        self.driver.move_to(end)
        for _ in range(2):
            self.driver.settle(ticks=self.config.max_ticks_per_step)
        self.measure.sample(end, True)
        compare_database(end, self.plan, self.truth, self.driver, self.result)
        self.measure.summarise()

    def _progress(self) -> str:
        r = self.result
        avoidable, unavoidable = r.lockout_minutes
        return (f"{len(self.truth.stays)} bookings, {self.driver.launched_runs} PIN runs, {r.syncs} syncs "
                f"({r.syncs_failed} failed), lockout min {avoidable}/{unavoidable}, "
                f"stranger min {sum(r.stranger_minutes)}, dup {len(r.duplicates)}")


def _materialized(result, node: str) -> bool:
    try:
        return bool(result.asset_materializations_for_node(node))
    except Exception:  # noqa: BLE001 - the node did not run in this result
        return False


def simulate(config: SeasonConfig, database_url: str, workdir: Path) -> SeasonResult:
    """Plan and run one season against an already migrated database."""
    return Season(build_plan(config), database_url, workdir).run()
