"""Tuya OpenAPI request signing, the post-2021 ("new") algorithm. Pure functions, no I/O.

Kept apart from the HTTP client so the sandbox cloud verifies requests with the same
definitions the client signs with, and tests can hold both against an independent
computation and against tinytuya's signer::

    string_to_sign = METHOD \\n sha256_hex(body) \\n signed_headers \\n path_and_query
    token calls:  sign = HMAC-SHA256(secret, client_id + t + nonce + string_to_sign)
    other calls:  sign = HMAC-SHA256(secret, client_id + access_token + t + nonce + string_to_sign)

``sign`` is the upper-case hex digest; ``t`` is epoch milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable, Mapping, Sequence

SIGN_METHOD = "HMAC-SHA256"


def body_sha256(body: bytes) -> str:
    """Hex SHA-256 of the exact bytes on the wire (an empty body hashes ``b""``)."""
    return hashlib.sha256(body).hexdigest()


def path_and_query(path: str, query: Mapping[str, object] | Iterable[tuple[str, object]] | None = None) -> str:
    """The URL part Tuya signs: the path, then ``?k=v&...`` with keys sorted and values NOT URL-encoded."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query or ())
    if not pairs:
        return path
    ordered = sorted(((str(key), str(value)) for key, value in pairs), key=lambda pair: pair[0])
    return path + "?" + "&".join(f"{key}={value}" for key, value in ordered)


def signed_headers_block(headers: Sequence[tuple[str, str]] = ()) -> str:
    """``name:value\\n`` for each header named in ``Signature-Headers``, in that order ("" when none)."""
    return "".join(f"{name}:{value}\n" for name, value in headers)


def string_to_sign(method: str, body: bytes, url_path_and_query: str,
                   signed_headers: Sequence[tuple[str, str]] = ()) -> str:
    return "\n".join([
        method.upper(),
        body_sha256(body),
        signed_headers_block(signed_headers),
        url_path_and_query,
    ])


def sign(*, secret: str, client_id: str, t_ms: int | str, nonce: str, text_to_sign: str,
         access_token: str = "") -> str:
    """Upper-case hex HMAC-SHA256; pass ``access_token=""`` for the token calls themselves."""
    message = f"{client_id}{access_token}{t_ms}{nonce}{text_to_sign}"
    return hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest().upper()


def request_sign(*, secret: str, client_id: str, t_ms: int | str, nonce: str, method: str, body: bytes,
                 url_path_and_query: str, access_token: str = "",
                 signed_headers: Sequence[tuple[str, str]] = ()) -> str:
    """Convenience: the ``sign`` header for one request."""
    return sign(
        secret=secret, client_id=client_id, t_ms=t_ms, nonce=nonce, access_token=access_token,
        text_to_sign=string_to_sign(method, body, url_path_and_query, signed_headers),
    )
