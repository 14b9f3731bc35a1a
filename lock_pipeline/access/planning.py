"""Which PIN work is due now: a pure function of the stays, the codes and the clock.

The sensor calls :func:`plan_actions` on rows read from Postgres; the jobs call it again on
fresh rows before acting, so a decision made on a stale read is never carried out.

Life cycle of a code (per stay, lock and window):
scheduled (no row yet) -> programming -> pending_on_lock (created in the cloud; phase not yet
read, or phase 1) -> active (phase 2, read by a confirm)
-> revoking -> revoked; failed (retries spent; retried on a bounded schedule, reprocess
restarts it); cancelled (stay cancelled before anything reached the lock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lock_pipeline.settings import DEFAULTS, Settings
from lock_pipeline.vocabulary import (
    ACTION_ORDER,
    LIVE_STATES,
    ActionKind,
    CodeState,
    OfflineCodes,
    StayKind,
    StayStatus,
)

# After a failed generate: try again after these delays, then leave it to a person.
RETRY_DELAYS = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12))
URGENT_BEFORE = timedelta(hours=2)  # this close to the window opening (or inside it), a failed PIN is retried ...
URGENT_RETRY = timedelta(minutes=15)  # ... this often, for as long as the window lasts


@dataclass(frozen=True)
class AccessPolicy:
    """What the planner needs of the settings (``AccessPolicy()`` is the defaults)."""

    program_ahead: timedelta = DEFAULTS.program_ahead
    missing_tolerance: timedelta = DEFAULTS.missing_tolerance
    default_lead: timedelta = DEFAULTS.access_lead
    default_grace: timedelta = DEFAULTS.access_grace
    backup_lead: timedelta = DEFAULTS.backup_code_lead
    stale_after: timedelta = timedelta(minutes=10)   # a run that stopped mid-action (killed)
    confirm_every: timedelta = timedelta(minutes=5)  # poll a pending code this often (a new one at once)
    lock_takes_at_most: timedelta = timedelta(minutes=15)  # an online lock that has not taken a PIN by then may not
    default_pin_length: int = DEFAULTS.pin_length    # the executor's: a lock without a length of its own

    @classmethod
    def from_settings(cls, settings: Settings) -> "AccessPolicy":
        return cls(program_ahead=settings.program_ahead, missing_tolerance=settings.missing_tolerance,
                   default_lead=settings.access_lead, default_grace=settings.access_grace,
                   backup_lead=settings.backup_code_lead, default_pin_length=settings.pin_length)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class StayAccess:
    """A stay as the PIN life cycle sees it (one row of the sensor's query)."""

    reservation_id: str
    code: str
    listing_id: str
    kind: str
    status: str
    check_in_at: datetime
    check_out_at: datetime
    device_id: str | None  # the listing's confirmed lock, if any
    guest_first_name: str | None = None
    missing_since: datetime | None = None
    lead_minutes: int | None = None  # per-listing override
    grace_minutes: int | None = None
    previous_check_out: datetime | None = None  # the previous guest's check-out on this listing, if it is close
    offline_codes: str | None = None  # whether the listing's lock supports offline codes (OfflineCodes)
    lock_online: bool | None = None  # the lock's online flag at the last lock refresh


@dataclass(frozen=True)
class AccessCode:
    code_id: int
    reservation_id: str
    device_id: str
    valid_from: datetime
    valid_until: datetime
    state: str
    attempts: int
    updated_at: datetime
    next_attempt_at: datetime | None = None
    tuya_password_id: str | None = None
    tuya_phase: int | None = None  # None: the lock's phase was never read (just created)
    retry_requested_at: datetime | None = None  # a person asked (reprocess) for its work to run now
    modify_refused_at: datetime | None = None  # the lock refused to move this PIN's window
    programmed_at: datetime | None = None  # when Tuya last took this PIN for the lock (create or retry)

    @property
    def movable(self) -> bool:
        """On the lock (or on its way there) and the lock has not refused to change its window."""
        return (self.state in (CodeState.ACTIVE, CodeState.PENDING_ON_LOCK) and self.tuya_password_id is not None
                and self.modify_refused_at is None)

    @property
    def window(self) -> Window:
        return Window(self.valid_from, self.valid_until)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    reservation_id: str
    reservation_code: str
    listing_id: str
    device_id: str
    window: Window
    code_id: int | None
    reason: str
    version: str  # changes whenever the code row changes, so a retried tick reuses the key and new state gets a new one

    @property
    def key(self) -> str:
        """Action, stay, lock and window: the sensor's run key is built from these."""
        return (f"{self.kind}:{self.reservation_code}:{self.device_id}:"
                f"{self.window.start:%Y%m%dT%H%M}-{self.window.end:%Y%m%dT%H%M}:{self.version}")

    def to_config(self) -> dict:
        return {
            "kind": self.kind.value, "reservation_id": self.reservation_id, "reservation_code": self.reservation_code,
            "listing_id": self.listing_id, "device_id": self.device_id,
            "valid_from": self.window.start.isoformat(), "valid_until": self.window.end.isoformat(),
            "code_id": self.code_id, "reason": self.reason, "version": self.version,
        }

    @classmethod
    def from_config(cls, raw: Mapping) -> "Action":
        return cls(
            kind=ActionKind(raw["kind"]), reservation_id=raw["reservation_id"], reservation_code=raw["reservation_code"],
            listing_id=raw["listing_id"], device_id=raw["device_id"],
            window=Window(datetime.fromisoformat(raw["valid_from"]), datetime.fromisoformat(raw["valid_until"])),
            code_id=raw.get("code_id"), reason=raw.get("reason", ""), version=raw.get("version", "0"),
        )


@dataclass(frozen=True)
class Desired:
    device_id: str
    window: Window


def access_window(stay: StayAccess, policy: AccessPolicy) -> Window:
    """Access opens ``lead`` before check-in and ends ``grace`` after check-out (per-listing overrides).

    Two guests' windows on one lock never overlap: a window opens no earlier than the previous
    guest's ends (their check-out plus grace), though never later than check-in itself.
    """
    lead = timedelta(minutes=stay.lead_minutes) if stay.lead_minutes is not None else policy.default_lead
    grace = timedelta(minutes=stay.grace_minutes) if stay.grace_minutes is not None else policy.default_grace
    start = stay.check_in_at - lead
    if stay.previous_check_out is not None:
        start = max(start, min(stay.previous_check_out + grace, stay.check_in_at))
    return Window(start, stay.check_out_at + grace)


def desired_access(stay: StayAccess | None, now: datetime, policy: AccessPolicy) -> Desired | None:
    """The one PIN a stay should have now, or None (cancelled, block, unmapped, gone too long)."""
    if stay is None or stay.kind != StayKind.GUEST or stay.status != StayStatus.CONFIRMED or stay.device_id is None:
        return None
    if stay.missing_since is not None and now - stay.missing_since >= policy.missing_tolerance:
        return None
    return Desired(stay.device_id, access_window(stay, policy))


def next_retry_at(attempts: int, failed_at: datetime, window: Window | None = None) -> datetime | None:
    """When a failed code is tried again, or None once the bounded schedule is spent and no guest waits.

    Far from arrival the schedule backs off (15 min, 1 h, 3 h, 6 h, 12 h). A guest at or near
    the door must not wait on it: from URGENT_BEFORE before the window opens until it ends, a
    failed code is retried every URGENT_RETRY, and a retry due later than that zone's start is
    brought forward to it (a lock that was offline or full may well be back by then).
    """
    index = attempts - 1
    scheduled = failed_at + RETRY_DELAYS[index] if 0 <= index < len(RETRY_DELAYS) else None
    if window is None or failed_at >= window.end:
        return scheduled
    urgent_from = window.start - URGENT_BEFORE
    if failed_at >= urgent_from:
        return failed_at + URGENT_RETRY if scheduled is None else min(scheduled, failed_at + URGENT_RETRY)
    return urgent_from if scheduled is None or scheduled > urgent_from else scheduled


@dataclass(frozen=True)
class BackupCode:
    """An offline code issued (or being requested) for a stay on a lock, in the window the cloud uses."""

    reservation_id: str
    device_id: str
    window: Window


HOUR = timedelta(hours=1)


def backup_window(access: Window, now: datetime) -> Window | None:
    """The window to ask the cloud for an offline code: whole hours, since the cloud rounds them (floors
    both), chosen so the code never opens outside the stay's access window.

    The start is the first whole hour at or after access opens (never into the previous guest's time:
    the access window already starts after it), but not earlier than the current hour: a code must be
    used within 24 h of its start or it never works, so it starts no earlier than needed. The end is
    rounded down, never past check-out. None when no whole hour fits (a window of under an hour).
    """
    start = max(_ceil_hour(access.start), _floor_hour(now))
    end = _floor_hour(access.end)
    return Window(start, end) if end > start else None


def _floor_hour(instant: datetime) -> datetime:
    return datetime.fromtimestamp(int(instant.timestamp()) // 3600 * 3600, tz=instant.tzinfo)


def _ceil_hour(instant: datetime) -> datetime:
    floor = _floor_hour(instant)
    return floor if floor == instant else floor + HOUR


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # explanations for work held back on purpose


def plan_actions(stays: Mapping[str, StayAccess], codes: Sequence[AccessCode], now: datetime,
                 policy: AccessPolicy, backups: Sequence[BackupCode] = ()) -> Plan:
    plan = Plan()
    live = [c for c in codes if c.state in LIVE_STATES]
    by_stay: dict[str, list[AccessCode]] = {}
    for code in live:
        by_stay.setdefault(code.reservation_id, []).append(code)

    for code in live:
        stay = stays.get(code.reservation_id)
        desired = desired_access(stay, now, policy)
        matches = desired is not None and desired.device_id == code.device_id and desired.window == code.window
        reservation_code = stay.code if stay else code.reservation_id
        listing_id = stay.listing_id if stay else ""
        version = f"{code.code_id}.{code.updated_at:%Y%m%dT%H%M%S%f}"

        def action(kind: ActionKind, reason: str) -> Action:
            return Action(kind, code.reservation_id, reservation_code, listing_id, code.device_id, code.window,
                          code.code_id, reason, version)

        stale = now - code.updated_at >= policy.stale_after
        asked = code.retry_requested_at is not None  # a reprocess: do its work now, whatever the schedule says
        if code.state == CodeState.REVOKING:
            if stale or asked:
                plan.actions.append(action(ActionKind.REVOKE, "an earlier revoke did not finish"))
            continue
        if now >= code.valid_until:
            plan.actions.append(action(ActionKind.REVOKE, "access window ended"))
            continue
        if not matches:
            if _moves_in_place(code, desired, by_stay.get(code.reservation_id, []), now, policy):
                plan.actions.append(Action(ActionKind.MODIFY, code.reservation_id, reservation_code, listing_id,
                                           code.device_id, desired.window, code.code_id,
                                           f"stay dates changed: move the PIN to {desired.window.start:%Y-%m-%d %H:%M}"
                                           f"..{desired.window.end:%Y-%m-%d %H:%M} UTC, same digits", version))
                continue
            reason = _why_unwanted(stay, desired, code, now, policy)
            if _hold_for_replacement(code, desired, by_stay.get(code.reservation_id, []), now):
                plan.waiting.append(f"{reservation_code}: old PIN kept until the new one is active ({reason})")
                continue
            plan.actions.append(action(ActionKind.REVOKE, reason))
            continue
        if code.state == CodeState.PENDING_ON_LOCK and code.tuya_phase is None:
            # Just created: the create's answer does not say whether the lock has it; ask at once.
            plan.actions.append(action(ActionKind.CONFIRM, "created: read whether the lock has the PIN"))
        elif code.state == CodeState.PENDING_ON_LOCK and now - code.updated_at >= policy.confirm_every:
            plan.actions.append(action(ActionKind.CONFIRM, "waiting for the lock to take the PIN"))
        elif code.state == CodeState.PROGRAMMING and (stale or asked):
            plan.actions.append(action(ActionKind.GENERATE, "an earlier generate did not finish: adopt or create"))
        elif code.state == CodeState.FAILED and (asked or (code.next_attempt_at is not None and now >= code.next_attempt_at)):
            plan.actions.append(action(ActionKind.GENERATE, f"retry {code.attempts + 1} of a failed PIN"))

    for stay in stays.values():
        desired = desired_access(stay, now, policy)
        if desired is None or now >= desired.window.end or now < desired.window.start - policy.program_ahead:
            continue
        codes_of_stay = by_stay.get(stay.reservation_id, [])
        backup = backup_due(stay, desired, codes_of_stay, backups, now, policy)
        if backup is not None:
            plan.actions.append(Action(ActionKind.BACKUP, stay.reservation_id, stay.code, stay.listing_id,
                                       desired.device_id, backup, None,
                                       "the PIN is not on the lock and access opens soon: an offline backup code", "new"))
        if any(c.device_id == desired.device_id and c.window == desired.window for c in codes_of_stay):
            continue
        if any(_moves_in_place(c, desired, codes_of_stay, now, policy) for c in codes_of_stay):
            continue  # the PIN already on this lock is moved to the new window (same digits), not replaced
        plan.actions.append(Action(ActionKind.GENERATE, stay.reservation_id, stay.code, stay.listing_id, desired.device_id,
                                   desired.window, None, "PIN due before access opens", "new"))
    plan.actions.sort(key=_execution_order)
    return plan


def backup_due(stay: StayAccess, desired: Desired, codes_of_stay: Sequence[AccessCode], backups: Sequence[BackupCode],
                now: datetime, policy: AccessPolicy) -> Window | None:
    """The window of an offline code the stay needs now, or None: ``backup_lead`` before access opens
    (or later), its PIN is not confirmed on the lock and will not be soon (it failed: storage full, a
    refusing cloud; or it is waiting on a lock that is offline, or has waited longer than an online
    lock takes), the lock may support offline codes, and no code already issued covers the stay."""
    if now < desired.window.start - policy.backup_lead or stay.offline_codes == OfflineCodes.UNSUPPORTED:
        return None
    pin = next((c for c in codes_of_stay if c.device_id == desired.device_id and c.window == desired.window), None)
    if pin is None or pin.state == CodeState.ACTIVE:
        return None  # not tried yet (the generate comes first), or on the lock
    waiting_long = pin.programmed_at is not None and now - pin.programmed_at >= policy.lock_takes_at_most
    if pin.state != CodeState.FAILED and stay.lock_online is not False and not waiting_long:
        return None  # an online lock is taking it now
    wanted = backup_window(desired.window, now)
    if wanted is None:
        return None
    covered = any(b.reservation_id == stay.reservation_id and b.device_id == desired.device_id
                  and desired.window.start <= b.window.start and b.window.end <= desired.window.end
                  and b.window.end > now for b in backups)
    return None if covered else wanted


def _execution_order(action: Action) -> tuple:
    """Generate before revoke, so a guest mid-stay gets the new PIN before losing the old one."""
    return (ACTION_ORDER[action.kind], action.window.start, action.key)


def _moves_in_place(code: AccessCode, desired: Desired | None, siblings: Iterable[AccessCode], now: datetime,
                    policy: AccessPolicy) -> bool:
    """A date change on the same lock: the guest keeps their digits, the PIN's window moves (Tuya
    modify-password). Not when the lock refused that before, nor when another code already holds
    the new window, nor when the new window is over or beyond the programming horizon (then the PIN
    is revoked now and programmed again, with the same digits, when it falls due)."""
    siblings = list(siblings)
    if desired is None or desired.device_id != code.device_id or not code.movable:
        return False
    if desired.window == code.window or now >= desired.window.end or desired.window.start - policy.program_ahead > now:
        return False
    if any(s.device_id == desired.device_id and s.window == desired.window for s in siblings):
        return False
    newest = max((s.code_id for s in siblings if s.device_id == code.device_id and s.movable), default=code.code_id)
    return code.code_id == newest  # one code moves; any older one on the lock is revoked


def _hold_for_replacement(code: AccessCode, desired: Desired | None, siblings: Iterable[AccessCode], now: datetime) -> bool:
    """Keep a guest's current PIN on the same lock while they are inside both windows and the
    replacement is not yet active: the guest is never without a working PIN during the stay."""
    if desired is None or desired.device_id != code.device_id or code.state != CodeState.ACTIVE:
        return False
    if not (code.window.contains(now) and desired.window.contains(now)):
        return False
    return not any(s.state == CodeState.ACTIVE and s.device_id == desired.device_id and s.window == desired.window for s in siblings)


def _why_unwanted(stay: StayAccess | None, desired: Desired | None, code: AccessCode, now: datetime,
                  policy: AccessPolicy) -> str:
    if stay is None:
        return "stay unknown to the pipeline"
    if stay.status == StayStatus.CANCELLED:
        return "stay cancelled"
    if stay.kind != StayKind.GUEST or stay.status != StayStatus.CONFIRMED:
        return f"stay is {stay.status}"
    if stay.device_id is None:
        return "listing has no confirmed lock any more"
    if stay.device_id != code.device_id:
        return "listing was remapped to another lock"
    if desired is None:
        return f"stay missing from Stays for over {policy.missing_tolerance}"
    return "stay dates changed"
