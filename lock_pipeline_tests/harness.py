"""Drives the real pipeline on a controlled clock: sync runs, sensor ticks and the runs they ask for.

Real Postgres, the sandbox Stays and Tuya servers, the real Definitions, sensor and jobs;
only time is moved by hand (through a clock file both the pipeline and the Tuya sandbox read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import DagsterInstance, RunRequest, build_sensor_context
from sqlalchemy import text

from lock_pipeline.access.pins import PinVault
from lock_pipeline.clock import FileClock
from lock_pipeline.orchestration.access_sensors import pin_actions_sensor
from lock_pipeline.orchestration.resources import ClockResource
from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, listing_record, reservation_record, tuya_device_id
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.storage.database import engine_for
from lock_pipeline_tests.helpers import TEST_PIN_KEY, build_test_definitions, run_sync

ZONE = ZoneInfo("America/Sao_Paulo")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZONE)


@dataclass
class World:
    """A small account: listings named like their locks, so every mapping auto-confirms."""

    seed: Seed = field(default_factory=Seed)

    def listing(self, index: int, name: str, *, lock: bool = True, online: bool = True) -> tuple[str, str]:
        record = listing_record(index, name, name, "Rua Teste", str(100 + index), "", "São Paulo", seed=3)
        self.seed.listings.append(record)
        device_id = tuya_device_id("harness", index)
        if lock:
            self.seed.locks.append(SeedLock(device_id=device_id, name=f"Fechadura {name}", online=online))
        return record["_id"], device_id

    def stay(self, code: str, listing_id: str, check_in: date, check_out: date, *, guest: str = "Maria Silva",
             stays_type: str = "booked") -> dict:
        record = reservation_record(reservation_id=hex_id("harness", code), code=code, listing_id=listing_id,
                                    check_in=check_in, check_out=check_out, check_in_time="15:00",
                                    check_out_time="11:00", guest_name=guest, stays_type=stays_type)
        self.seed.reservations.append(record)
        return record


class Harness:
    def __init__(self, database_url: str, world: World, tmp_path: Path, start: datetime,
                 instance: DagsterInstance | None = None) -> None:
        self.clock = FileClock(tmp_path / "clock")
        self.clock.set(start)
        self.stays = StaysSandbox(world.seed).start()
        self.tuya = TuyaSandbox(world.seed.locks, clock=self.clock, max_pins_per_lock=50).start()
        self.defs = build_test_definitions(database_url, stays=self.stays, tuya=self.tuya,
                                           extra={"clock": ClockResource(clock_file=str(self.clock.path))})
        self.engine = engine_for(database_url)
        self.instance = instance or DagsterInstance.ephemeral()
        self.cursor: str | None = None
        self.vault = PinVault(TEST_PIN_KEY)
        self.runs: list = []

    def close(self) -> None:
        self.stays.stop()
        self.tuya.stop()

    # -- time and orchestration -------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def move_to(self, instant: datetime) -> None:
        self.clock.set(instant)

    def sync(self):
        return run_sync(self.defs, now=self.now, instance=self.instance, raise_on_error=False)

    def tick(self) -> list:
        """One sensor evaluation and the runs it asked for, executed in process."""
        resources = {key: self.defs.resources[key] for key in ("postgres", "clock", "pipeline_config")}
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=resources)
        result = pin_actions_sensor(context)
        self.cursor = context.cursor
        requests = [r for r in (result if isinstance(result, list) else []) if isinstance(r, RunRequest)]
        job = self.defs.resolve_job_def("pin_actions_job")
        outcomes = []
        for request in requests:
            outcome = job.execute_in_process(run_config=request.run_config, tags=request.tags,
                                             instance=self.instance, raise_on_error=False)
            outcomes.append(outcome)
        self.runs.extend(outcomes)
        return outcomes

    def settle(self, ticks: int = 3) -> None:
        """Sync, then tick until nothing more is due (as the schedule and the sensor would)."""
        self.sync()
        for _ in range(ticks):
            if not self.tick():
                break

    def step(self, instant: datetime) -> None:
        self.move_to(instant)
        self.settle()
        self.assert_truth()

    # -- the lock's own truth ---------------------------------------------------------------

    def pins_of(self, code: str) -> list[tuple[str, str]]:
        """(device, PIN) of every code ever issued for a stay."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("""
                SELECT c.device_id, c.pin_ciphertext FROM pipeline.access_codes c
                JOIN pipeline.reservations r USING (reservation_id)
                WHERE r.code = :code AND c.pin_ciphertext IS NOT NULL
            """), {"code": code}).all()
        return [(row.device_id, self.vault.decrypt(row.pin_ciphertext)) for row in rows]

    def opens(self, code: str, device_id: str, at: datetime | None = None) -> bool:
        at = at or self.now
        return any(self.tuya.would_open(device, pin, at) for device, pin in self.pins_of(code) if device == device_id)

    def opens_anywhere(self, code: str, at: datetime | None = None) -> list[str]:
        at = at or self.now
        return [device for device, pin in self.pins_of(code) if self.tuya.would_open(device, pin, at)]

    def state_of(self, code: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT access_state FROM admin.reservations WHERE reservation_code = :c"),
                                {"c": code}).scalar()

    def assert_truth(self) -> None:
        """Nobody locked out, nobody let in: for every stay, the lock agrees with the calendar now."""
        now = self.now
        with self.engine.connect() as conn:
            stays = conn.execute(text("""
                SELECT r.code, r.status, r.check_in_at, r.check_out_at, m.device_id, k.online
                FROM pipeline.reservations r
                LEFT JOIN pipeline.lock_mappings m ON m.listing_id = r.listing_id AND m.status = 'confirmed'
                LEFT JOIN pipeline.locks k ON k.device_id = m.device_id
                WHERE r.kind = 'guest'
            """)).all()
        problems = []
        for stay in stays:
            window_open = stay.check_in_at - timedelta(hours=2) <= now < stay.check_out_at
            should_open = stay.status == "confirmed" and stay.device_id is not None and window_open
            where = self.opens_anywhere(stay.code, now)
            strangers = [d for d in where if not should_open or d != stay.device_id]
            if strangers:
                problems.append(f"{stay.code}: a PIN opens {strangers} at {now} outside its stay")
            if should_open and stay.device_id not in where and self.tuya.is_online(stay.device_id):
                problems.append(f"{stay.code}: locked out of {stay.device_id} at {now}")
        assert not problems, "\n".join(problems)
