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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from anyascii import anyascii
from sqlalchemy import Engine, text

from lock_pipeline.access import store
from lock_pipeline.access.pins import PinVault, generate_pin, mask_pin
from lock_pipeline.access.planning import AccessPolicy, Action, Desired, desired_access, next_retry_at
from lock_pipeline.tuya.client import TuyaClient, TuyaCode, TuyaError

LABEL_PREFIX = "LP "
LABEL_MAX = 20  # short enough for the lock apps' name field


def lock_label(reservation_code: str, guest_first_name: str | None) -> str:
    """How the PIN is named on the lock: whose it is, readable in the lock's own app."""
    name = anyascii(guest_first_name or "").strip()
    label = f"{LABEL_PREFIX}{reservation_code} {name}".strip()
    return label[:LABEL_MAX]


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: str  # active | pending_on_lock | revoked | cancelled | skipped
    detail: str
    password_id: str | None = None


class AccessExecutor:
    def __init__(self, engine: Engine, tuya: TuyaClient, vault: PinVault, *, now: Callable[[], datetime],
                 policy: AccessPolicy, run_id: str | None = None) -> None:
        self.engine = engine
        self.tuya = tuya
        self.vault = vault
        self.now = now
        self.policy = policy
        self.run_id = run_id

    def perform(self, action: Action, *, final_attempt: bool = True) -> Outcome:
        with store.lock_device(self.engine, action.device_id):
            if action.kind == "generate":
                return self._generate(action, final_attempt)
            if action.kind == "confirm":
                return self._confirm(action)
            if action.kind == "revoke":
                return self._revoke(action)
        raise ValueError(f"unknown PIN action {action.kind!r}")

    # ------------------------------------------------------------------ generate

    def _generate(self, action: Action, final_attempt: bool) -> Outcome:
        now = self.now()
        with self.engine.begin() as conn:
            stay, _codes = store.load_stay(conn, action.reservation_id)
            wanted = desired_access(stay, now, self.policy)
            if wanted != Desired(action.device_id, action.window) or now >= action.window.end:
                return self._skip(conn, action, None, "no longer wanted: the stay or its lock changed since it was planned")
            row = conn.execute(text("""
                SELECT code_id, state, pin_ciphertext, lock_label, attempts FROM pipeline.access_codes
                WHERE reservation_id = :r AND device_id = :d AND valid_from = :f AND valid_until = :u
                  AND state NOT IN ('revoked', 'cancelled') FOR UPDATE
            """), self._window_params(action)).one_or_none()
            if row is not None and row.state in ("active", "pending_on_lock", "revoking"):
                return self._skip(conn, action, row.code_id, f"already {row.state}")
            length = store.lock_pin_length(conn, action.device_id)
            if row is None:
                label = lock_label(stay.code, stay.guest_first_name)
                pin = generate_pin(length, avoid=self._other_pins(conn, action.device_id, None))
                code_id = conn.execute(text("""
                    INSERT INTO pipeline.access_codes (reservation_id, device_id, valid_from, valid_until, state,
                        pin_ciphertext, pin_masked, lock_label, attempts, last_run_id, created_at, updated_at)
                    VALUES (:r, :d, :f, :u, 'programming', :cipher, :masked, :label, 1, :run, :now, :now)
                    RETURNING code_id
                """), {**self._window_params(action), "cipher": self.vault.encrypt(pin), "masked": mask_pin(pin),
                       "label": label, "run": self.run_id, "now": now}).scalar_one()
                attempts = 1
            else:
                code_id, label, attempts = row.code_id, row.lock_label, row.attempts + 1
                pin = self.vault.decrypt(row.pin_ciphertext)
                conn.execute(text("""
                    UPDATE pipeline.access_codes SET state = 'programming', attempts = :a, updated_at = :now,
                        last_run_id = :run, next_attempt_at = NULL WHERE code_id = :c
                """), {"a": attempts, "now": now, "run": self.run_id, "c": code_id})
        try:
            password_id, phase, how = self._program(action, code_id, pin, label, length,
                                                    earlier_attempts=row is not None)
        except (TuyaError, OSError) as error:
            self._generate_failed(action, code_id, attempts, error, final_attempt)
            raise
        state = "active" if phase == 2 else "pending_on_lock"
        with self.engine.begin() as conn:
            conn.execute(text("""
                UPDATE pipeline.access_codes SET state = :s, tuya_password_id = :p, tuya_phase = :phase,
                    programmed_at = :now, active_at = CASE WHEN :s = 'active' THEN CAST(:now AS timestamptz) END,
                    last_error = NULL, updated_at = :now, last_run_id = :run WHERE code_id = :c
            """), {"s": state, "p": password_id, "phase": phase, "now": self.now(), "run": self.run_id, "c": code_id})
            store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action="generate", outcome=state, run_id=self.run_id, at=self.now(),
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
        if earlier_attempts:
            for existing in self.tuya.list_temp_passwords(action.device_id):
                if existing.name == label and existing.effective_time == action.window.start \
                        and existing.invalid_time == action.window.end:
                    return existing.password_id, existing.phase, "adopted the PIN an interrupted attempt created"
        try:
            password_id = self._create(action, pin, label)
        except TuyaError as error:
            if error.code != TuyaCode.DUPLICATE_PASSWORD:
                raise
            # The lock holds these digits already (a PIN the pipeline does not manage): pick others.
            with self.engine.begin() as conn:
                pin = generate_pin(length, avoid={pin, *self._other_pins(conn, action.device_id, code_id)})
                conn.execute(text("UPDATE pipeline.access_codes SET pin_ciphertext = :c, pin_masked = :m WHERE code_id = :id"),
                             {"c": self.vault.encrypt(pin), "m": mask_pin(pin), "id": code_id})
            password_id = self._create(action, pin, label)
        return password_id, None, "created; the lock's confirmation is read by the next confirm"

    def _create(self, action: Action, pin: str, label: str) -> str:
        return self.tuya.create_temp_password(action.device_id, pin=pin, name=label,
                                              effective=action.window.start, invalid=action.window.end)

    def _generate_failed(self, action: Action, code_id: int, attempts: int, error: Exception, final_attempt: bool) -> None:
        now = self.now()
        with self.engine.begin() as conn:
            # The bounded schedule counts failed runs, not attempts: each run already spent its step retries.
            retry_at = (next_retry_at(1 + store.failed_runs_since_reset(conn, code_id), now, action.window)
                        if final_attempt else None)
            conn.execute(text("""
                UPDATE pipeline.access_codes SET last_error = :e, updated_at = :now, last_run_id = :run,
                    state = CASE WHEN :final THEN 'failed' ELSE state END, next_attempt_at = :retry
                WHERE code_id = :c
            """), {"e": str(error)[:500], "now": now, "run": self.run_id, "final": final_attempt, "retry": retry_at, "c": code_id})
            store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action="generate", outcome="failed" if final_attempt else "error", run_id=self.run_id,
                               at=now, detail=str(error)[:500] + (f"; next try {retry_at.isoformat()}" if retry_at else ""))

    # ------------------------------------------------------------------ confirm

    def _confirm(self, action: Action) -> Outcome:
        with self.engine.begin() as conn:
            row = conn.execute(text("SELECT state, tuya_password_id FROM pipeline.access_codes WHERE code_id = :c FOR UPDATE"),
                               {"c": action.code_id}).one_or_none()
            if row is None or row.state != "pending_on_lock":
                return self._skip(conn, action, action.code_id, f"code is {row.state if row else 'gone'}")
        password = self.tuya.get_temp_password(action.device_id, row.tuya_password_id)
        now = self.now()
        state = "active" if password.phase == 2 else "pending_on_lock"
        with self.engine.begin() as conn:
            conn.execute(text("""
                UPDATE pipeline.access_codes SET state = :s, tuya_phase = :phase, updated_at = :now,
                    active_at = CASE WHEN :s = 'active' THEN CAST(:now AS timestamptz) ELSE active_at END
                WHERE code_id = :c
            """), {"s": state, "phase": password.phase, "now": now, "c": action.code_id})
            if state == "active":
                store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                                   device_id=action.device_id, action="confirm", outcome="active", run_id=self.run_id,
                                   at=now, password_id=row.tuya_password_id, detail="the lock took the PIN")
        return Outcome(action, state, f"phase {password.phase}", row.tuya_password_id)

    # ------------------------------------------------------------------ revoke

    def _revoke(self, action: Action) -> Outcome:
        now = self.now()
        with self.engine.begin() as conn:
            row = conn.execute(text("""
                SELECT state, tuya_password_id, lock_label, valid_from, valid_until, reservation_id, device_id
                FROM pipeline.access_codes WHERE code_id = :c FOR UPDATE
            """), {"c": action.code_id}).one_or_none()
            if row is None or row.state in ("revoked", "cancelled"):
                return self._skip(conn, action, action.code_id, f"code is {row.state if row else 'gone'}")
            stay, _codes = store.load_stay(conn, row.reservation_id)
            wanted = desired_access(stay, now, self.policy)
            if (wanted == Desired(row.device_id, action.window) and now < row.valid_until
                    and row.state != "revoking"):
                return self._skip(conn, action, action.code_id, "still wanted: the stay is back as it was")
            conn.execute(text("UPDATE pipeline.access_codes SET state = 'revoking', updated_at = :now, last_run_id = :run "
                              "WHERE code_id = :c"), {"now": now, "run": self.run_id, "c": action.code_id})
        try:
            password_id = row.tuya_password_id or self._find_by_label(action, row.lock_label)
            if password_id is not None:
                self._delete(action.device_id, password_id)
        except (TuyaError, OSError) as error:
            with self.engine.begin() as conn:
                conn.execute(text("UPDATE pipeline.access_codes SET last_error = :e, updated_at = :now WHERE code_id = :c"),
                             {"e": str(error)[:500], "now": self.now(), "c": action.code_id})
                store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id,
                                   device_id=action.device_id, action="revoke", outcome="error", run_id=self.run_id,
                                   at=self.now(), password_id=row.tuya_password_id, detail=str(error)[:500])
            raise
        final = "revoked" if password_id is not None else "cancelled"
        with self.engine.begin() as conn:
            conn.execute(text("""
                UPDATE pipeline.access_codes SET state = :s, revoked_at = :now, updated_at = :now, last_error = NULL,
                    tuya_password_id = COALESCE(tuya_password_id, :p), next_attempt_at = NULL
                WHERE code_id = :c
            """), {"s": final, "now": self.now(), "p": password_id, "c": action.code_id})
            store.record_event(conn, code_id=action.code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                               action="revoke", outcome=final, run_id=self.run_id, at=self.now(), password_id=password_id,
                               detail=action.reason)
        return Outcome(action, final, action.reason, password_id)

    def _find_by_label(self, action: Action, label: str) -> str | None:
        for existing in self.tuya.list_temp_passwords(action.device_id):
            if existing.name == label and existing.effective_time == action.window.start \
                    and existing.invalid_time == action.window.end:
                return existing.password_id
        return None

    def _delete(self, device_id: str, password_id: str) -> None:
        """Delete, then make sure: an error is only ignored when the PIN is really gone from the lock."""
        try:
            self.tuya.delete_temp_password(device_id, password_id)
        except TuyaError:
            if any(p.password_id == password_id for p in self.tuya.list_temp_passwords(device_id)):
                raise

    # ------------------------------------------------------------------ helpers

    def _skip(self, conn, action: Action, code_id: int | None, why: str) -> Outcome:
        store.record_event(conn, code_id=code_id, reservation_id=action.reservation_id, device_id=action.device_id,
                           action=action.kind, outcome="skipped", run_id=self.run_id, at=self.now(), detail=why)
        return Outcome(action, "skipped", why)

    def _other_pins(self, conn, device_id: str, code_id: int | None) -> set[str]:
        return {self.vault.decrypt(c) for c in store.other_pins_ciphertexts(conn, device_id, code_id)}

    @staticmethod
    def _window_params(action: Action) -> dict:
        return {"r": action.reservation_id, "d": action.device_id, "f": action.window.start, "u": action.window.end}
