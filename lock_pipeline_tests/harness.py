"""Drives the real pipeline on a controlled clock: sync runs, sensor ticks and the runs they ask for.

Real Postgres, the sandbox Stays and Tuya servers, the real Definitions, sensor and jobs;
only time is moved by hand (through a clock file both the pipeline and the Tuya sandbox read).
The driver is part of the test rig, not the product (season/driver.py, shared with the season
simulator); this module adds the tests' small world and the per-step truth assertion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import DagsterInstance
from sqlalchemy import text

from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, listing_record, reservation_record, tuya_device_id
from lock_pipeline_tests.helpers import TEST_PIN_KEY, make_settings
from season.driver import PipelineDriver

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


# Generous call timeouts: a loopback call never takes this long unless the machine is very busy,
# and a test must not fail then (the faults that are timeouts never answer at all).
TEST_CALL_TIMEOUT = 10.0


class Harness(PipelineDriver):
    def __init__(self, database_url: str, world: World, tmp_path: Path, start: datetime,
                 instance: DagsterInstance | None = None, webhooks: bool = False, settings=None) -> None:
        super().__init__(database_url, world.seed, tmp_path, start, instance=instance, pin_key=TEST_PIN_KEY,
                         settings=settings or make_settings(), max_pins_per_lock=50, stays_timeout=TEST_CALL_TIMEOUT,
                         tuya_timeout=TEST_CALL_TIMEOUT, webhooks=webhooks)

    def step(self, instant: datetime) -> None:
        self.move_to(instant)
        self.settle()
        self.assert_truth()

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
            window_open = stay.check_in_at - self.settings.access_lead <= now < stay.check_out_at
            should_open = stay.status == "confirmed" and stay.device_id is not None and window_open
            where = self.opens_anywhere(stay.code, now)
            strangers = [d for d in where if not should_open or d != stay.device_id]
            if strangers:
                problems.append(f"{stay.code}: a PIN opens {strangers} at {now} outside its stay")
            if should_open and stay.device_id not in where and self.tuya.is_online(stay.device_id):
                problems.append(f"{stay.code}: locked out of {stay.device_id} at {now}")
        assert not problems, "\n".join(problems)
