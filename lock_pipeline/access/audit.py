"""Compare what each lock really holds with what the pipeline believes (pure).

Managed PINs carry the pipeline's name prefix; anything else on a lock (the owner's master
code, the cleaner's code) is counted but never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lock_pipeline.access.pins import LABEL_PREFIX
from lock_pipeline.access.planning import AccessPolicy, StayAccess, desired_access
from lock_pipeline.tuya.client import TempPassword


@dataclass(frozen=True)
class KnownCode:
    code_id: int
    reservation_id: str
    reservation_code: str
    state: str
    lock_label: str
    valid_from: datetime
    valid_until: datetime
    tuya_password_id: str | None
    device_id: str = ""


@dataclass
class LockAudit:
    device_id: str
    violations: list[dict] = field(default_factory=list)  # a PIN valid outside its own stay's window
    orphans: list[TempPassword] = field(default_factory=list)  # pipeline-named, unknown to the database
    gone: list[KnownCode] = field(default_factory=list)  # active in the database, not in the lock's list
    foreign: int = 0


def audit_lock(device_id: str, on_lock: Sequence[TempPassword], codes: Iterable[KnownCode],
               stays: Mapping[str, StayAccess], now: datetime, policy: AccessPolicy) -> LockAudit:
    audit = LockAudit(device_id)
    codes = list(codes)
    by_password = {c.tuya_password_id: c for c in codes if c.tuya_password_id}
    unconfirmed = {(c.lock_label, c.valid_from, c.valid_until) for c in codes
                   if c.tuya_password_id is None and c.state in ("programming", "failed")}
    for pin in on_lock:
        if pin.phase == 0 or pin.invalid_time <= now:
            continue
        if not pin.name.startswith(LABEL_PREFIX):
            audit.foreign += 1
            continue
        code = by_password.get(pin.password_id)
        if code is None:
            if (pin.name, pin.effective_time, pin.invalid_time) not in unconfirmed:  # an interrupted create is adopted, not an orphan
                audit.orphans.append(pin)
            continue
        if code.state in ("revoked", "cancelled") and pin.phase != 3:
            audit.violations.append(_row(code, pin, "revoked in the database but still on the lock"))
            continue
        wanted = desired_access(stays.get(code.reservation_id), now, policy)
        if code.state in ("revoking",) or pin.phase == 3:
            continue  # on its way out
        if wanted is None or wanted.device_id != device_id:
            audit.violations.append(_row(code, pin, "valid on a lock its stay no longer has access to"))
        elif pin.effective_time < wanted.window.start or pin.invalid_time > wanted.window.end:
            audit.violations.append(_row(code, pin, "valid outside its stay's access window"))
    on_lock_now = {pin.password_id for pin in on_lock if pin.phase != 0}
    audit.gone = [c for c in codes if c.state == "active" and c.valid_until > now
                  and c.tuya_password_id is not None and c.tuya_password_id not in on_lock_now]
    return audit


def _row(code: KnownCode, pin: TempPassword, problem: str) -> dict:
    return {
        "reservation_code": code.reservation_code, "code_id": code.code_id, "state": code.state,
        "password_id": pin.password_id, "valid_on_lock": f"{pin.effective_time.isoformat()}..{pin.invalid_time.isoformat()}",
        "problem": problem,
    }
