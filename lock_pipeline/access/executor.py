"""Carries out one PIN action against the lock, exactly once, with the audit trail.

Exactly once: the code row (with its encrypted PIN) is committed *before* Tuya is called.
When that row already existed before this attempt (``programming`` or ``failed``: an earlier
attempt may have reached Tuya), the lock's own list is searched for a PIN with this code's
name and window before creating, so a run killed between Tuya's answer and the final commit
adopts its PIN on the next attempt instead of creating a second one. A row this attempt has
just inserted needs no search: it did not exist, so no attempt can have programmed it. (Every
row that left the live states went through a revoke, which deleted its PIN or found none.)
A per-lock advisory lock keeps two runs off one lock, and every action re-checks, on fresh
rows, that it is still wanted.

Truthful states: a create answers only with the password's id, not whether the lock has it.
So a new PIN is recorded ``pending_on_lock`` with its phase unknown, and the ``confirm``
action (planned by the sensor at its next tick) reads the phase and records ``active``. The
database never says ``active`` for a PIN the lock has not confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from lock_pipeline import checkpoints
from lock_pipeline.access import backup_store, store
from lock_pipeline.access.pins import PinVault, backup_label, generate_pin, lock_label, mask_pin
from lock_pipeline.access.planning import (
    AccessPolicy,
    Action,
    Desired,
    Window,
    backup_due,
    desired_access,
    next_retry_at,
)
from lock_pipeline.mapping import locks
from lock_pipeline.tuya.client import TuyaClient, TuyaCode, TuyaError, pin_length_from_error
from lock_pipeline.vocabulary import ActionKind, CodeState, OfflineCodes

SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: str  # a CodeState the action left the code in, or "skipped"
    detail: str
    password_id: str | None = None


class AccessExecutor:
    """``channels``: the delivery channels configured (Settings.delivery_channels); the code events a
    guest must hear about are queued for them in the transaction of the change (delivery/outbox.py)."""

    def __init__(self, engine: Engine, tuya: TuyaClient, vault: PinVault, *, now: Callable[[], datetime],
                 policy: AccessPolicy, run_id: str | None = None, channels: Sequence[str] = ()) -> None:
        self.channels = tuple(channels)
        self.engine = engine
        self.tuya = tuya
        self.vault = vault
        self.now = now
        self.policy = policy
        self.run_id = run_id

    def perform(self, action: Action, *, final_attempt: bool = True) -> Outcome:
        with store.lock_device(self.engine, action.device_id):
            if action.kind == ActionKind.GENERATE:
                return self._generate(action, final_attempt)
            if action.kind == ActionKind.MODIFY:
                return self._modify(action)
            if action.kind == ActionKind.CONFIRM:
                return self._confirm(action)
            if action.kind == ActionKind.REVOKE:
                return self._revoke(action)
            if action.kind == ActionKind.BACKUP:
                return self._backup(action)
        raise ValueError(f"unknown PIN action {action.kind!r}")

    # ------------------------------------------------------------------ generate

    def _generate(self, action: Action, final_attempt: bool) -> Outcome:
        checkpoints.reached(checkpoints.GENERATE_START, action.reservation_code)
        now = self.now()
        with self.engine.begin() as conn:
            stay, _codes = store.load_stay(conn, action.reservation_id)
            wanted = desired_access(stay, now, self.policy)
            if wanted != Desired(action.device_id, action.window) or now >= action.window.end:
                return self._skip(conn, action, None, "no longer wanted: the stay or its lock changed since it was planned")
            row = store.live_code_for_window(conn, action.reservation_id, action.device_id, action.window)
            if row is not None and row.state in (CodeState.ACTIVE, CodeState.PENDING_ON_LOCK, CodeState.REVOKING):
                return self._skip(conn, action, row.code_id, f"already {row.state}")
            length = locks.pin_length(conn, action.device_id, self.policy.default_pin_length)
            if row is None:
                label = lock_label(stay.code, stay.guest_first_name)
                pin, changed = self._digits_for(conn, action, length)
                code_id = store.insert_programming_code(
                    conn, reservation_id=action.reservation_id, device_id=action.device_id, window=action.window,
                    pin_ciphertext=self.vault.encrypt(pin), pin_masked=mask_pin(pin), lock_label=label,
                    run_id=self.run_id, now=now, digits_changed=changed)
                attempts = 1
            else:
                code_id, label, attempts = row.code_id, row.lock_label, row.attempts + 1
                pin = self.vault.decrypt(row.pin_ciphertext)
                store.mark_programming(conn, code_id, attempts=attempts, run_id=self.run_id, now=now)
        try:
            password_id, phase, how = self._program(action, code_id, pin, label, length,
                                                    earlier_attempts=row is not None)
        except (TuyaError, OSError) as error:
            asked = pin_length_from_error(error) if isinstance(error, TuyaError) else None
            if asked is not None and asked != length:
                return self._pin_length_refused(action, code_id, length, asked, error)
            self._generate_failed(action, code_id, attempts, error, final_attempt)
            raise
        checkpoints.reached(checkpoints.GENERATE_AFTER_TUYA, action.reservation_code)
        state = CodeState.ACTIVE if phase == 2 else CodeState.PENDING_ON_LOCK
        with self.engine.begin() as conn:
            store.record_programmed(conn, code_id, state=state, password_id=password_id, phase=phase,
                                    run_id=self.run_id, now=self.now(), channels=self.channels)
            locks.clear_pin_length_asked(conn, action.device_id)
            store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.GENERATE, outcome=state, run_id=self.run_id, at=self.now(),
                               password_id=password_id, detail=how)
        return Outcome(action, state, how, password_id)

    def _program(self, action: Action, code_id: int, pin: str, label: str, length: int, *,
                 earlier_attempts: bool = True) -> tuple[str, int | None, str]:
        """Adopt our PIN if an earlier, interrupted attempt already put it on the lock; else create it.

        Returns the password id, its phase when known (adopted: the lock's list says; created:
        ``None``, left to the confirm action) and what was done. ``earlier_attempts`` is False
        only for a code row this attempt inserted: then no earlier PIN can exist and the lock's
        list is not read.
        """
        checkpoints.reached(checkpoints.GENERATE_BEFORE_TUYA, action.reservation_code)
        if earlier_attempts:
            existing = self._find_by_label(action, label)
            if existing is not None:
                return existing.password_id, existing.phase, "adopted the PIN an interrupted attempt created"
        if len(pin) != length:  # the lock's PIN length was set since these digits were chosen (none reached it)
            pin = self._other_digits(action, code_id, pin, length)
        try:
            password_id = self._create(action, pin, label)
        except TuyaError as error:
            if error.code != TuyaCode.DUPLICATE_PASSWORD:
                raise
            # The lock holds these digits already (a PIN the pipeline does not manage): pick others.
            pin = self._other_digits(action, code_id, pin, length)
            password_id = self._create(action, pin, label)
        return password_id, None, "created; the lock's confirmation is read by the next confirm"

    def _other_digits(self, action: Action, code_id: int, pin: str, length: int) -> str:
        """New digits for a code the lock does not hold, stored before they are sent."""
        with self.engine.begin() as conn:
            previous = self._previous_digits(conn, action.reservation_id)
            pin = generate_pin(length, avoid={pin, *self._other_pins(conn, action.device_id, code_id)})
            store.replace_pin(conn, code_id, pin_ciphertext=self.vault.encrypt(pin), pin_masked=mask_pin(pin),
                              digits_changed=previous is not None and previous != pin, now=self.now())
        return pin

    def _create(self, action: Action, pin: str, label: str) -> str:
        return self.tuya.create_temp_password(action.device_id, pin=pin, name=label,
                                              effective=action.window.start, invalid=action.window.end)

    def _generate_failed(self, action: Action, code_id: int, attempts: int, error: Exception, final_attempt: bool) -> None:
        now = self.now()
        with self.engine.begin() as conn:
            # The bounded schedule counts failed runs, not attempts: each run already spent its step retries.
            retry_at = (next_retry_at(1 + store.failed_runs_since_reset(conn, code_id), now, action.window)
                        if final_attempt else None)
            store.record_generate_error(conn, code_id, error=str(error)[:500], final=final_attempt, retry_at=retry_at,
                                        run_id=self.run_id, now=now, channels=self.channels)
            store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.GENERATE, outcome=CodeState.FAILED if final_attempt else "error",
                               run_id=self.run_id, at=now,
                               detail=str(error)[:500] + (f"; next try {retry_at.isoformat()}" if retry_at else ""))

    def _pin_length_refused(self, action: Action, code_id: int, length: int, asked: int, error: TuyaError) -> Outcome:
        """The lock's cloud refused the PIN for its length and named the length the lock takes.

        Every retry would send the same length and be refused the same way, so none is made: the code
        is ``failed`` at once with no next try (no step retries, no retry schedule), the lock records
        what it asked for, and admin.attention lists it (pin_length_mismatch) for a person to set the
        length; ``lock-pipeline lock set`` then retries the lock's failed PINs at once, with new digits
        of the right length. The length is not adopted by itself: the real cloud's wording of this
        answer is not documented, and a lock's PIN length is the operator's to decide.
        """
        now = self.now()
        detail = (f"the lock takes {asked}-digit PINs, not {length}: not retried until its length is set "
                  f"(lock-pipeline lock set {action.device_id} --pin-length {asked})")
        with self.engine.begin() as conn:
            locks.record_pin_length_asked(conn, action.device_id, asked, now)
            store.record_generate_error(conn, code_id, error=f"{error}; {detail}"[:500], final=True, retry_at=None,
                                        run_id=self.run_id, now=now)
            store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.GENERATE, outcome=CodeState.FAILED, run_id=self.run_id, at=now,
                               detail=detail)
        return Outcome(action, CodeState.FAILED, detail)

    # ------------------------------------------------------------------ modify

    def _modify(self, action: Action) -> Outcome:
        """Move a PIN's window on its lock, same digits (the guest keeps the code they were given).

        Idempotent: asking the lock for the window it already has changes nothing, so a run killed
        between Tuya's answer and the commit simply asks again. The new window is written only after
        the lock accepted it. A lock that refuses (an answer retrying will not change) is marked, and
        the planner falls back to new digits and lists the stay for a person (pin_changed).
        """
        now = self.now()
        with self.engine.begin() as conn:
            row = store.code_for_update(conn, action.code_id)
            if row is None or row.state not in (CodeState.ACTIVE, CodeState.PENDING_ON_LOCK) \
                    or row.tuya_password_id is None:
                return self._skip(conn, action, action.code_id, f"code is {row.state if row else 'gone'}")
            stay, _codes = store.load_stay(conn, row.reservation_id)
            if desired_access(stay, now, self.policy) != Desired(row.device_id, action.window) or now >= action.window.end:
                return self._skip(conn, action, action.code_id, "no longer wanted: the stay changed again since it was planned")
            if Window(row.valid_from, row.valid_until) == action.window:
                return self._skip(conn, action, action.code_id, "already at this window")
            pin = self.vault.decrypt(store.pin_ciphertext_of(conn, action.code_id))
        try:
            self.tuya.modify_temp_password(action.device_id, row.tuya_password_id, pin=pin, name=row.lock_label,
                                           effective=action.window.start, invalid=action.window.end)
        except TuyaError as error:
            if error.retryable or error.code is None:
                if not self._lock_has_window(action, row.tuya_password_id):  # an ambiguous answer: look
                    self._record_error(action, row.tuya_password_id, error)
                    raise
            else:
                with self.engine.begin() as conn:
                    store.record_modify_refused(conn, action.code_id, error=str(error)[:500], now=self.now())
                    store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                                       device_id=action.device_id, action=ActionKind.MODIFY, outcome="refused",
                                       run_id=self.run_id, at=self.now(), password_id=row.tuya_password_id,
                                       detail=f"the lock refused to move the PIN ({str(error)[:300]}): new digits instead")
                return Outcome(action, "refused", str(error), row.tuya_password_id)
        with self.engine.begin() as conn:
            store.record_moved(conn, action.code_id, window=action.window, run_id=self.run_id, now=self.now())
            store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                               device_id=action.device_id, action=ActionKind.MODIFY, outcome=CodeState.PENDING_ON_LOCK,
                               run_id=self.run_id, at=self.now(), password_id=row.tuya_password_id, detail=action.reason)
        return Outcome(action, CodeState.PENDING_ON_LOCK, action.reason, row.tuya_password_id)

    def _lock_has_window(self, action: Action, password_id: str) -> bool:
        try:
            on_lock = self.tuya.get_temp_password(action.device_id, password_id)
        except TuyaError:
            return False
        return on_lock.effective_time == action.window.start and on_lock.invalid_time == action.window.end

    def _record_error(self, action: Action, password_id: str | None, error: Exception) -> None:
        with self.engine.begin() as conn:
            store.record_error(conn, action.code_id, error=str(error)[:500], now=self.now())
            store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                               device_id=action.device_id, action=action.kind, outcome="error",
                               run_id=self.run_id, at=self.now(), password_id=password_id, detail=str(error)[:500])

    # ------------------------------------------------------------------ backup

    def _backup(self, action: Action) -> Outcome:
        """An offline code for a stay whose PIN is not on its lock near arrival: the lock computes it
        itself, so it opens while the lock is offline or its storage full. Only inside the stay's window
        (action.window, whole hours: planning.backup_window). It cannot be deleted remotely."""
        now = self.now()
        with self.engine.begin() as conn:
            stay, codes = store.load_stay(conn, action.reservation_id)
            wanted = desired_access(stay, now, self.policy)
            if wanted is None or wanted.device_id != action.device_id \
                    or not (wanted.window.start <= action.window.start and action.window.end <= wanted.window.end):
                return self._skip(conn, action, None, "no longer wanted: the stay or its lock changed since it was planned")
            # The planner's own rule on what is true now: the PIN may have reached the lock (or been sent to an
            # online lock) earlier in this run, or another run may have issued a code meanwhile.
            if backup_due(stay, wanted, codes, backup_store.live_backups(conn, [action.reservation_id], now), now,
                          self.policy) is None:
                return self._skip(conn, action, None, "no longer needed: the PIN is on (or on its way to) the lock, "
                                                      "or a backup code already covers the stay")
            backup_store.mark_unanswered_lost(conn, action.reservation_id, action.device_id)
            attempt = backup_store.requests_so_far(conn, action.reservation_id, action.device_id) + 1
            name = backup_label(stay.code, attempt)
            backup_id = backup_store.insert_request(conn, reservation_id=action.reservation_id,
                                                    device_id=action.device_id, name=name, window=action.window,
                                                    run_id=self.run_id, now=now)
        try:
            offline = self.tuya.create_offline_password(action.device_id, name=name, effective=action.window.start,
                                                        invalid=action.window.end)
        except TuyaError as error:
            if error.code in (TuyaCode.LOCK_TYPE_NOT_SUPPORTED, TuyaCode.DUPLICATE_NAME, TuyaCode.NAME_TOO_LONG,
                              TuyaCode.TOO_MANY_OFFLINE_PASSWORDS, TuyaCode.PARAM_ILLEGAL):
                return self._backup_refused(action, backup_id, error)
            with self.engine.begin() as conn:  # no code reached anyone: the next plan asks again, under another name
                backup_store.record_refused(conn, backup_id)
            self._record_error(action, None, error)
            raise
        now = self.now()
        with self.engine.begin() as conn:
            backup_store.record_issued(conn, backup_id, tuya_offline_id=offline.password_id,
                                       code_ciphertext=self.vault.encrypt(offline.digits),
                                       code_masked=mask_pin(offline.digits), effective_from=offline.effective,
                                       invalid_at=offline.invalid, now=now, channels=self.channels)
            locks.record_offline_codes(conn, action.device_id, OfflineCodes.SUPPORTED, now)
            store.record_event(conn, code_id=None, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.BACKUP, outcome="issued", run_id=self.run_id, at=now,
                               detail=f"offline code valid {offline.effective:%Y-%m-%d %H:%M}..{offline.invalid:%Y-%m-%d %H:%M} UTC "
                                      "(must be used first within 24 h of its start)")
        return Outcome(action, "issued", f"offline code {offline.effective:%H:%M}..{offline.invalid:%Y-%m-%d %H:%M} UTC")

    def _backup_refused(self, action: Action, backup_id: int, error: TuyaError) -> Outcome:
        """The cloud created nothing. A lock whose model has no offline codes is marked so (its stays keep
        the alerts of an offline lock); other refusals are recorded and planned again later."""
        now = self.now()
        with self.engine.begin() as conn:
            backup_store.record_refused(conn, backup_id)
            if error.code == TuyaCode.LOCK_TYPE_NOT_SUPPORTED:
                locks.record_offline_codes(conn, action.device_id, OfflineCodes.UNSUPPORTED, now)
            store.record_event(conn, code_id=None, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.BACKUP, outcome="refused", run_id=self.run_id, at=now,
                               detail=str(error)[:500])
        return Outcome(action, "refused", str(error))

    # ------------------------------------------------------------------ confirm

    def _confirm(self, action: Action) -> Outcome:
        checkpoints.reached(checkpoints.CONFIRM_START, action.reservation_code)
        with self.engine.begin() as conn:
            row = store.code_for_update(conn, action.code_id)
            if row is None or row.state != CodeState.PENDING_ON_LOCK:
                return self._skip(conn, action, action.code_id, f"code is {row.state if row else 'gone'}")
        password = self.tuya.get_temp_password(action.device_id, row.tuya_password_id)
        now = self.now()
        if password.phase == 0:  # deleted on the lock (by hand, in the Tuya app): programmed again, same digits
            return self._gone_from_lock(action, row.tuya_password_id, now)
        with self.engine.begin() as conn:
            state = store.record_confirmation(conn, action.code_id, phase=password.phase, now=now,
                                              channels=self.channels)
            if state == CodeState.ACTIVE:
                store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                                   device_id=action.device_id, action=ActionKind.CONFIRM, outcome=state,
                                   run_id=self.run_id, at=now, password_id=row.tuya_password_id,
                                   detail="the lock took the PIN")
        return Outcome(action, state, f"phase {password.phase}", row.tuya_password_id)

    def _gone_from_lock(self, action: Action, password_id: str, now: datetime) -> Outcome:
        with self.engine.begin() as conn:
            store.record_gone_from_lock(conn, action.code_id, now=now)
            store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                               device_id=action.device_id, action=ActionKind.CONFIRM, outcome=CodeState.FAILED,
                               run_id=self.run_id, at=now, password_id=password_id,
                               detail=store.GONE_FROM_LOCK)
        return Outcome(action, CodeState.FAILED, store.GONE_FROM_LOCK, password_id)

    # ------------------------------------------------------------------ revoke

    def _revoke(self, action: Action) -> Outcome:
        now = self.now()
        with self.engine.begin() as conn:
            row = store.code_for_update(conn, action.code_id)
            if row is None or row.state in (CodeState.REVOKED, CodeState.CANCELLED):
                return self._skip(conn, action, action.code_id, f"code is {row.state if row else 'gone'}")
            stay, _codes = store.load_stay(conn, row.reservation_id)
            wanted = desired_access(stay, now, self.policy)
            if (wanted == Desired(row.device_id, action.window) and now < row.valid_until
                    and row.state != CodeState.REVOKING):
                return self._skip(conn, action, action.code_id, "still wanted: the stay is back as it was")
            store.mark_revoking(conn, action.code_id, run_id=self.run_id, now=now)
        try:
            password_id = row.tuya_password_id
            if password_id is None:
                found = self._find_by_label(action, row.lock_label)
                password_id = found.password_id if found is not None else None
            if password_id is not None:
                self._delete(action.device_id, password_id)
                checkpoints.reached(checkpoints.REVOKE_AFTER_DELETE, action.reservation_code)
        except (TuyaError, OSError) as error:
            self._record_error(action, row.tuya_password_id, error)
            raise
        with self.engine.begin() as conn:
            final = store.record_revoked(conn, action.code_id, password_id=password_id, now=self.now(),
                                         channels=self.channels)
            store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action=ActionKind.REVOKE, outcome=final, run_id=self.run_id, at=self.now(),
                               password_id=password_id, detail=action.reason)
        return Outcome(action, final, action.reason, password_id)

    def _find_by_label(self, action: Action, label: str):
        """Our PIN on the lock, found by its name and window (how an interrupted attempt is recognised)."""
        for existing in self.tuya.list_temp_passwords(action.device_id):
            if existing.name == label and existing.effective_time == action.window.start \
                    and existing.invalid_time == action.window.end:
                return existing
        return None

    def _delete(self, device_id: str, password_id: str) -> None:
        """Delete, then make sure: an error is only ignored when the PIN is really gone from the lock."""
        try:
            self.tuya.delete_temp_password(device_id, password_id)
        except TuyaError:
            if any(p.password_id == password_id for p in self.tuya.list_temp_passwords(device_id)):
                raise

    # ------------------------------------------------------------------ helpers

    def _skip(self, conn: Connection, action: Action, code_id: int | None, why: str) -> Outcome:
        store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                           action=action.kind, outcome=SKIPPED, run_id=self.run_id, at=self.now(), detail=why)
        return Outcome(action, SKIPPED, why)

    def _digits_for(self, conn: Connection, action: Action, length: int) -> tuple[str, bool]:
        """The stay keeps the digits it was given (a move, a remap, a stay reprogrammed later) unless the
        lock already holds them for another live code (then new ones, and a person must tell the guest)."""
        taken = self._other_pins(conn, action.device_id, None)
        previous = self._previous_digits(conn, action.reservation_id)
        if previous is not None and len(previous) == length and previous not in taken:
            return previous, False
        return generate_pin(length, avoid=taken), previous is not None

    def _previous_digits(self, conn: Connection, reservation_id: str) -> str | None:
        stored = store.previous_pin_ciphertext(conn, reservation_id)
        return self.vault.decrypt(stored) if stored is not None else None

    def _other_pins(self, conn: Connection, device_id: str, code_id: int | None) -> set[str]:
        return {self.vault.decrypt(c) for c in store.other_pins_ciphertexts(conn, device_id, code_id)}
