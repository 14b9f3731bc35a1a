"""The door-lock password-ticket cryptography, with ``cryptography``'s AES (nothing hand-rolled).

A PIN never travels in clear text: the cloud hands out a one-time ``ticket_key`` encrypted
under the project's access secret (AES-256-ECB, PKCS7); the PIN is then encrypted under
that 16-byte key (AES-128-ECB, PKCS7) and sent as upper-case hex. ECB is Tuya's choice,
not ours; each key is single-use, which is what keeps it tolerable.

The encrypt/decrypt counterparts the cloud side needs live here too, so the sandbox
cloud runs the same definitions in the other direction.
"""

from __future__ import annotations

import binascii

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TICKET_KEY_BYTES = 16
_BLOCK_BITS = 128


class TicketCryptoError(ValueError):
    """The ticket key or encrypted password is malformed (never carries key or PIN material)."""


def _secret_key(access_secret: str) -> bytes:
    key = access_secret.encode("utf-8")
    if len(key) != 32:
        raise TicketCryptoError("the access secret must be 32 bytes (UTF-8) to serve as an AES-256 key")
    return key


def _ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % 16:
        raise TicketCryptoError("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise TicketCryptoError("bad PKCS7 padding (wrong key?)") from exc


def _from_hex(text: str, what: str) -> bytes:
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise TicketCryptoError(f"{what} is not hex") from exc


def decrypt_ticket_key(ticket_key_hex: str, access_secret: str) -> bytes:
    """The 16-byte PIN key inside a ``ticket_key`` (hex, AES-256-ECB under the access secret)."""
    key = _ecb_decrypt(_secret_key(access_secret), _from_hex(ticket_key_hex, "ticket_key"))
    if len(key) != TICKET_KEY_BYTES:
        raise TicketCryptoError(f"ticket_key decrypts to {len(key)} bytes, expected {TICKET_KEY_BYTES}")
    return key


def encrypt_pin(pin: str, ticket_key: bytes) -> str:
    """The ``password`` field: the PIN's ASCII digits, AES-128-ECB under the ticket key, upper-case hex."""
    if not (pin.isascii() and pin.isdigit()):
        raise TicketCryptoError("a PIN is ASCII digits only")
    if len(ticket_key) != TICKET_KEY_BYTES:
        raise TicketCryptoError(f"the ticket key must be {TICKET_KEY_BYTES} bytes")
    return _ecb_encrypt(ticket_key, pin.encode("ascii")).hex().upper()


# The cloud's side of the exchange (used by the sandbox cloud).

def encrypt_ticket_key(ticket_key: bytes, access_secret: str) -> str:
    """What the cloud sends as ``ticket_key``: the 16-byte key under the access secret, hex."""
    if len(ticket_key) != TICKET_KEY_BYTES:
        raise TicketCryptoError(f"the ticket key must be {TICKET_KEY_BYTES} bytes")
    return _ecb_encrypt(_secret_key(access_secret), ticket_key).hex().upper()


def decrypt_pin(password_hex: str, ticket_key: bytes) -> str:
    """The PIN a client posted; raises :class:`TicketCryptoError` when it does not decrypt to ASCII."""
    plaintext = _ecb_decrypt(ticket_key, _from_hex(password_hex, "password"))
    try:
        return plaintext.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TicketCryptoError("password does not decrypt to ASCII (wrong ticket?)") from exc
