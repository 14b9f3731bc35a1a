"""Truth sampled at every step, after the pipeline acted, and the season's figures at its end
(its end state against the database and the locks: compare.py).

Truth comes from the sandboxes themselves: the Tuya sandbox says which PINs would open which
door now (its own validity windows and phases), the Stays sandbox holds the calendar. So the
minute figures have the step's resolution: an interval shorter than one step does not show (a
booking made between two syncs is seen at the next step, as the 30-minute schedule would).

An incident's minutes are avoidable unless the pipeline had no step, since the stay's booking or
last change, where it read Stays (and that record), could reach the lock and was not killed.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from lock_pipeline.access.pins import LABEL_PREFIX
from lock_pipeline.settings import DEFAULTS
from season.config import RELAUNCH_AFTER_KILL
from season.result import Incident, SeasonResult
from season.truth import Truth, TruthStay

if TYPE_CHECKING:
    from lock_pipeline.sandbox.tuya_cloud import SandboxPin
    from season.driver import PipelineDriver
    from season.faults import World
    from season.plan import SeasonPlan


class Measurement:
    """What the season saw at every step, and the figures it ends with (in ``result``)."""

    def __init__(self, plan: SeasonPlan, truth: Truth, world: World, driver: PipelineDriver,
                 result: SeasonResult) -> None:
        self.plan, self.config, self.truth, self.world, self.driver, self.result = (
            plan, plan.config, truth, world, driver, result)
        # (step, saw Stays, daemon up, locks offline, locks full)
        self.history: list[tuple[datetime, bool, bool, frozenset[int], frozenset[int]]] = []
        self.corrupt_steps: dict[str, list[datetime]] = defaultdict(list)
        self.attention_seen: dict[tuple[str, str], datetime] = {}        # first sighting
        self.attention_log: dict[tuple[str, str], list[datetime]] = defaultdict(list)  # every sighting
        self.attention_spans: dict[str, dict[str, tuple[datetime, datetime | None]]] = defaultdict(dict)
        self.lock_ids = [lock.device_id for lock in plan.seed.locks]
        self.lock_index = {device: i for i, device in enumerate(self.lock_ids)}
        self.listing_codes = [listing["id"] for listing in plan.seed.listings]

    # -- every step ----------------------------------------------------------------------------

    def sample(self, now: datetime, saw: bool) -> None:
        """The doors now (``saw``: the step's sync read Stays)."""
        world = self.world
        self.history.append((now, saw, world.daemon_up, frozenset(world.offline), frozenset(world.full)))
        for stay in self.truth.stays.values():
            if stay.corrupted:
                self.corrupt_steps[stay.booking.rid].append(now)
        opening = self._sample_pins(now)
        self._sample_strangers(now, opening)
        self._sample_lockouts(now, opening, self._codes_guests_know())
        self._sample_attention(now)
        self._sample_offline_code_strangers(now)

    def _sample_pins(self, now: datetime) -> dict[tuple[str, str], int]:
        """(lock, stay code) -> PINs that open it now; a stay's duplicate live PINs are recorded."""
        opening: dict[tuple[str, str], int] = defaultdict(int)
        live: Counter = Counter()
        for device in self.lock_ids:
            for pin in self.world.tuya.pins(device):
                code = labelled_code(pin)
                if code is None:
                    continue
                if pin.is_live(now):
                    live[(device, code, pin.effective, pin.invalid)] += 1
                if pin.opens_at(now):
                    opening[(device, code)] += 1
        for key, count in live.items():
            if count > 1:
                self.result.duplicates.add((key[0], key[1], key[2].isoformat(), key[3].isoformat()))
        return opening

    def _sample_strangers(self, now: datetime, opening: dict[tuple[str, str], int]) -> None:
        """A PIN that opens a door now outside its own stay's window, lock or status."""
        for (device, code) in opening:
            stay = self.truth.by_code.get(code)
            fine = (stay is not None and stay.status == "confirmed" and stay.booking.kind == "guest"
                    and self.lock_ids[stay.listing] == device and stay.window[0] <= now < stay.window[1])
            if fine:
                continue
            incident = self.result.strangers.setdefault((code, device), Incident(code, device, now))
            why = self._unavoidable(stay, self.lock_index[device], now, for_delete=True) if stay else None
            self._count(incident, why, "pipeline could have revoked it")

    def _codes_guests_know(self) -> dict[str, set[str]] | None:
        """What each guest has been told: the digits in the door-code field of their Stays reservation
        (the channel the season delivers through). None: the season does not model delivery, and
        every guest knows every code the pipeline made for them."""
        if not self.config.write_back:
            return None
        stays = self.world.stays
        fields = {f["_idfield"] for f in stays.custom_fields() if f.get("internalName") == DEFAULTS.stays_pin_field}
        known: dict[str, set[str]] = {}
        for raw in stays.reservations():
            for value in raw.get("appCustomFields") or ():
                if isinstance(value, dict) and value.get("_idfield") in fields:
                    known[raw.get("id")] = set(re.findall(r"\d{4,}", str(value.get("val") or "")))
        return known

    def _sample_lockouts(self, now: datetime, opening: dict[tuple[str, str], int],
                         known: dict[str, set[str]] | None) -> None:
        """A confirmed guest inside its access window who cannot open its door with what it was told
        (with delivery unmodelled: without any PIN or backup code of its stay that opens)."""
        tuya = self.world.tuya
        for stay in self.truth.stays.values():
            if stay.status != "confirmed" or stay.booking.kind != "guest":
                continue
            start, end = stay.window
            if not (start <= now < end) or now < stay.created_at:
                continue
            device, code = self.lock_ids[stay.listing], stay.booking.code
            told = None if known is None else known.get(code, set())
            if told is None:
                if opening.get((device, code)) or self._backup_code_opens(device, code, now):
                    continue
            else:
                offline = {o.digits for o in tuya.offline_codes(device)}  # typed below, where first use counts
                if any(tuya.would_open(device, digits, now) for digits in told - offline) \
                        or self._backup_code_opens(device, code, now, told):
                    continue
            incident = self.result.lockouts.get(code)
            if incident is None:
                incident = self.result.lockouts[code] = Incident(code, device, now, check_in_at=stay.check_in_at,
                                                                 booked_at=stay.created_at)
            if told is not None and (opening.get((device, code)) or self._backup_code_opens(device, code, now, probe=True)):
                # A code of the stay opens the door; the guest was never given it.
                self._count(incident, self._undelivered_why(stay), "the code was made but not given to the guest",
                            cause=UNDELIVERED)
                continue
            why = self._unavoidable(stay, stay.listing, now, for_delete=False)
            self._count(incident, why, "the pipeline could see the stay and reach the lock")

    def _undelivered_why(self, stay: TruthStay) -> str | None:
        """Why the guest could not have been given the code, or None: a step since the stay's last change
        had Stays serving and the daemon running, so the write-back could have reached the reservation."""
        for at, saw, daemon, _offline, _full in reversed(self.history):
            if at < stay.changed_at:
                break
            if saw and daemon:
                return None
        return f"{BLIND} or the daemon stopped, so the code could not be written to it"

    def _backup_code_opens(self, device: str, code: str, now: datetime, told: set[str] | None = None, *,
                           probe: bool = False) -> bool:
        """The guest, without a PIN that opens, types the stay's offline backup code (the lock records
        its first use, which keeps it working past its first 24 hours). ``told``: only a code the guest
        was given; ``probe``: whether one would open, without typing it."""
        for offline in self.world.tuya.offline_codes(device):
            if offline.kind != "multiple" or labelled_backup(offline.name) != code:
                continue
            if probe:
                if self.world.tuya.would_open(device, offline.digits, now):
                    return True
                continue
            if (told is None or offline.digits in told) and self.world.tuya.enter_code(device, offline.digits, now):
                self.result.backup_codes_used.add(code)
                return True
        return False

    def _sample_offline_code_strangers(self, now: datetime) -> None:
        """An offline code that opens a door for someone who has no access there now (a stay cancelled or
        moved after its code was issued): it cannot be deleted remotely, only cleared at the lock."""
        for index, device in enumerate(self.lock_ids):
            for offline in self.world.tuya.offline_codes(device):
                code = labelled_backup(offline.name) if offline.kind == "multiple" else None
                if code is None or not self.world.tuya.would_open(device, offline.digits, now):
                    continue
                stay = self.truth.by_code.get(code)
                if stay is not None and stay.status == "confirmed" and stay.listing == index \
                        and stay.window[0] <= now < stay.window[1]:
                    continue
                incident = self.result.offline_code_strangers.setdefault(code, Incident(code, device, now))
                incident.minutes += self.config.step_minutes
                told = self.attention_seen.get(("backup_code_outstanding", code))
                if incident.surfaced_at is None and told is not None:
                    incident.surfaced_at, incident.surfaced_as = told, "backup_code_outstanding"
                if told is None or told > incident.first_at:
                    incident.avoidable_minutes += self.config.step_minutes  # nobody was told before it could open
                incident.reason = "an offline code of a stay cancelled or moved still opens the lock"

    def _count(self, incident: Incident, unavoidable_because: str | None, avoidable_because: str, *,
               cause: str | None = None) -> None:
        step_minutes = self.config.step_minutes
        incident.minutes += step_minutes
        if unavoidable_because is None:
            incident.avoidable_minutes += step_minutes
        incident.minutes_by_cause[cause or (PIPELINE if unavoidable_because is None
                                            else cause_of(unavoidable_because))] += step_minutes
        incident.reason = unavoidable_because or avoidable_because

    def _unavoidable(self, stay: TruthStay, lock: int, now: datetime, *, for_delete: bool) -> str | None:
        """Why the pipeline could not have done better, or None: it had a step since the stay's last
        change where it read Stays (and that record) and could reach the lock."""
        corrupt = set(self.corrupt_steps.get(stay.booking.rid, ()))
        kills = self.world.points.killed.get(stay.booking.code, [])
        blind = stopped = unreachable = killed = 0
        # An offline code needs only the cloud: a lock that has them is reachable for a guest's way in.
        backup_possible = not for_delete and lock not in self.world.no_offline_codes
        for at, saw, daemon, offline, full in reversed(self.history):
            if at < stay.changed_at:
                break
            seen = saw and at not in corrupt
            reachable = backup_possible or (lock not in offline and (for_delete or lock not in full))
            # A killed run is relaunched in the next half-hour slot (the sensor's cursor and run-key slot).
            running = not any(k <= at < k + RELAUNCH_AFTER_KILL for k in kills)
            if seen and reachable and running:
                return None
            stopped += not daemon
            blind += daemon and not seen
            unreachable += not reachable
            killed += not running
        reasons = [text for count, text in ((unreachable, UNREACHABLE),
                                             (blind, BLIND),
                                             (stopped, STOPPED),
                                             (killed, KILLED))
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

    # -- the end -------------------------------------------------------------------------------

    def summarise(self) -> None:
        """The season's figures, once every fault healed and the pipeline settled."""
        result, config, truth = self.result, self.config, self.truth.stays
        guests = [s for s in truth.values() if s.booking.kind == "guest"]
        result.bookings = len(truth)
        result.guest_stays = len(guests)
        result.blocks = len(truth) - len(guests)
        result.cancelled = sum(1 for s in guests if s.status == "cancelled")
        result.modified = sum(1 for s in guests if s.booking.change and not s.booking.change.kind.startswith("cancel")
                              and s.changed_at > s.created_at)
        result.stays_arrived = sum(1 for s in guests
                                   if s.status == "confirmed" and config.begin <= s.window[0] < config.end)
        result.last_minute = sum(1 for s in guests
                                 if s.booking.lead_class in ("hours", "minutes") and s.created_at >= config.begin)
        starts = {(s.listing, s.check_in) for s in truth.values() if s.status == "confirmed"}
        result.same_day_turnovers = sum(1 for s in guests
                                        if s.status == "confirmed" and (s.listing, s.check_out) in starts
                                        and config.begin <= s.check_out_at < config.end)
        result.pins_issued = sum(1 for device in self.lock_ids for p in self.world.tuya.pins(device)
                                 if labelled_code(p) is not None)
        result.spent_keys_skipped = self.driver.skipped_spent_keys
        result.runs = self.driver.launched_runs
        for incident in result.lockouts.values():
            surfaced = self._first_surfaced(incident)
            if surfaced is not None:
                incident.surfaced_at, incident.surfaced_as = surfaced
        result.attention = {issue: dict(spans) for issue, spans in self.attention_spans.items()}
        result.attention_leads = self._attention_leads()
        self._count_date_changes(guests)
        log = self.driver.stays.webhook_log
        result.webhooks_sent = len({d.event for d in log if d.attempt > 0})
        result.webhooks_delivered = len({d.event for d in log if d.delivered})
        result.webhooks_dropped = len({d.event for d in log if d.attempt == 0})
        result.backup_codes_issued = sum(1 for device in self.lock_ids for c in self.world.tuya.offline_codes(device)
                                         if c.kind in ("multiple", "once"))

    def _count_date_changes(self, guests: list) -> None:
        """Stays whose dates moved on the same lock after their PIN was on it, and how many kept their
        digits (a guest who already has the code should not get a new one for a date change)."""
        moved = [s for s in guests if s.status == "confirmed" and s.booking.change
                 and not s.booking.change.kind.startswith("cancel") and s.booking.change.listing in (None, s.booking.listing)
                 and s.changed_at > s.created_at]
        with self.driver.engine.connect() as conn:
            for stay in moved:
                issued_before = conn.execute(text("""
                    SELECT count(*) FROM pipeline.access_codes c JOIN pipeline.reservations r USING (reservation_id)
                    WHERE r.code = :code AND c.pin_ciphertext IS NOT NULL AND c.created_at <= :changed"""),
                    {"code": stay.booking.code, "changed": stay.changed_at}).scalar()
                if not issued_before:
                    continue
                self.result.date_changes_same_lock += 1
                if len({pin for _device, pin in self.driver.pins_of(stay.booking.code)}) == 1:
                    self.result.date_changes_kept_digits += 1

    def _first_surfaced(self, incident: Incident) -> tuple[datetime, str] | None:
        """When admin.attention first showed a person the lockout (the stay, its listing, or, when
        Stays did not serve it, the failing feed), after the stay was booked."""
        stay = self.truth.by_code[incident.code]
        blind = "Stays did not serve" in incident.reason or "daemon stopped" in incident.reason
        candidates = []
        for (issue, key), seen in self.attention_log.items():
            relevant = key in (incident.code, "L:" + self.listing_codes[stay.listing]) or (
                blind and issue in ("sync_failing", "sync_stale"))  # then the failing feed is what a person sees
            after = [at for at in seen if at >= stay.created_at] if relevant else []
            if after:
                candidates.append((after[0], issue))
        return min(candidates) if candidates else None

    def _attention_leads(self) -> dict[str, list[float]]:
        """Per issue: hours between a stay's first appearance and its check-in, for stays it named."""
        leads: dict[str, list[float]] = defaultdict(list)
        for (issue, key), at in self.attention_seen.items():
            stay = self.truth.by_code.get(key)
            if stay is None or at >= stay.check_out_at:
                continue  # listing-level items, and items about stays already gone (a revoke that failed)
            leads[issue].append((stay.check_in_at - at).total_seconds() / 3600)
        return leads


# Why a guest stood at a locked door (the season's lockout minutes by cause).
PIPELINE = "the pipeline could have acted"
STAYS = "Stays never served the stay"
LOCK = "lock unreachable and no offline code possible"
PIPELINE_DOWN = "the pipeline was stopped (daemon down, run killed)"
UNDELIVERED = "nobody gave the guest the code"
CAUSES = (PIPELINE, STAYS, LOCK, PIPELINE_DOWN, UNDELIVERED)
UNREACHABLE = "lock unreachable (offline or PIN storage full, and no offline codes)"
BLIND = "Stays did not serve the stay (down, slow, empty or malformed)"
STOPPED = "daemon stopped"
KILLED = "its PIN run was killed, relaunched in the next half-hour slot"


def cause_of(reasons: str) -> str:
    """The first cause among an unavoidable incident's reasons (the lock's state comes first: it is
    what no pipeline could change)."""
    for reason, cause in ((UNREACHABLE, LOCK), (BLIND, STAYS), (STOPPED, PIPELINE_DOWN), (KILLED, PIPELINE_DOWN)):
        if reason in reasons:
            return cause
    return PIPELINE


def labelled_backup(name: str) -> str | None:
    """The stay an offline code is for, from its name ("LP EV23J B", "LP EV23J B2")."""
    if not name.startswith(LABEL_PREFIX):
        return None
    parts = name[len(LABEL_PREFIX):].split(" ")
    return parts[0] if len(parts) == 2 and parts[1].startswith("B") else None


def labelled_code(pin: SandboxPin) -> str | None:
    """The stay a PIN is for, from the label the pipeline gives it (None: not the pipeline's PIN)."""
    if not pin.name.startswith(LABEL_PREFIX):
        return None
    return pin.name[len(LABEL_PREFIX):].split(" ")[0]
