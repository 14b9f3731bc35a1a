"""PIN rules: strong random digits, masking, encryption at rest, and how a PIN is named on the lock.

A PIN is generated with ``secrets``, never weak (no repeated digit runs, no straight
sequences, no palindromes), distinct from the lock's other PINs the pipeline knows, stored
only as Fernet ciphertext, and shown only masked (``•••••42``). Its name on the lock starts
with ``LABEL_PREFIX``: that is how the pipeline tells its own PINs from the owner's or the
cleaner's, which it never touches.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

from anyascii import anyascii
from cryptography.fernet import Fernet, InvalidToken

LABEL_PREFIX = "LP "
LABEL_MAX = 20  # short enough for the lock apps' name field

_MAX_RUN = 2  # at most two equal digits in a row
_MAX_STEP_RUN = 3  # at most three digits in a straight sequence (123, 987)


class PinKeyError(ValueError):
    """The PIN key cannot decrypt what is stored: the key changed or the data is damaged."""


def is_weak_pin(pin: str) -> bool:
    """True for PINs a guest, a neighbour or a brute-force list would try first."""
    if not pin.isdigit():
        return True
    digits = [int(c) for c in pin]
    if len(set(digits)) <= 2:  # 1111111, 1212121
        return True
    if pin == pin[::-1]:  # palindromes
        return True
    run = step_up = step_down = 1
    for previous, current in zip(digits, digits[1:]):
        run = run + 1 if current == previous else 1
        step_up = step_up + 1 if current == (previous + 1) % 10 else 1
        step_down = step_down + 1 if current == (previous - 1) % 10 else 1
        if run > _MAX_RUN or step_up > _MAX_STEP_RUN or step_down > _MAX_STEP_RUN:
            return True
    return False


def generate_pin(length: int, avoid: Collection[str] = ()) -> str:
    """A strong PIN of ``length`` digits that is not in ``avoid`` (the lock's other PINs)."""
    if not 4 <= length <= 12:
        raise ValueError(f"PIN length {length} is outside 4..12")
    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(length))
        if not is_weak_pin(pin) and pin not in avoid:
            return pin


def lock_label(reservation_code: str, guest_first_name: str | None) -> str:
    """How the PIN is named on the lock: whose it is, readable in the lock's own app."""
    name = anyascii(guest_first_name or "").strip()
    label = f"{LABEL_PREFIX}{reservation_code} {name}".strip()
    return label[:LABEL_MAX]


def backup_label(reservation_code: str, attempt: int = 1) -> str:
    """How a stay's offline backup code is named in the cloud (unique among the lock's live ones)."""
    return f"{LABEL_PREFIX}{reservation_code} B{attempt if attempt > 1 else ''}"[:LABEL_MAX]


def mask_pin(pin: str) -> str:
    """All but the last two digits hidden: enough for a guest and a host to tell codes apart."""
    return "•" * (len(pin) - 2) + pin[-2:]


class PinVault:
    """Encrypts PINs at rest with the key from ``LOCK_PIPELINE_PIN_KEY``."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode("ascii") if isinstance(key, str) else key)
        except (ValueError, TypeError) as error:
            raise PinKeyError("LOCK_PIPELINE_PIN_KEY is not a valid Fernet key") from error

    def __repr__(self) -> str:
        return "PinVault(<key hidden>)"

    def encrypt(self, pin: str) -> bytes:
        return self._fernet.encrypt(pin.encode("ascii"))

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode("ascii")
        except InvalidToken as error:
            raise PinKeyError(
                "a stored PIN cannot be decrypted with LOCK_PIPELINE_PIN_KEY: the key changed since it was stored"
            ) from error
