"""One Tuya token for every run, shared through Postgres (pipeline.tuya_tokens), encrypted at rest.

A run that finds a usable token uses it; the first one that finds it stale takes a Postgres
advisory lock, reads again (another run may have just renewed it), and only then asks Tuya.
So the token calls stay at about one per two hours however many runs there are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, text

from lock_pipeline.tuya.client import Token


class PostgresTokenStore:
    def __init__(self, engine: Engine, access_id: str, key: str) -> None:
        self.engine = engine
        self.access_id = access_id
        self._fernet = Fernet(key.encode("ascii"))

    def __repr__(self) -> str:
        return f"PostgresTokenStore(access_id={self.access_id[:4]}…)"

    def load(self) -> Token | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT ciphertext, renew_at FROM pipeline.tuya_tokens WHERE access_id = :a"),
                               {"a": self.access_id}).one_or_none()
        if row is None:
            return None
        try:
            secret = json.loads(self._fernet.decrypt(bytes(row.ciphertext)))
        except (InvalidToken, ValueError):
            return None  # another key wrote it (a key change): fetch a new token, which overwrites it
        return Token(secret["access_token"], secret.get("refresh_token"), row.renew_at.timestamp())

    def save(self, token: Token) -> None:
        secret = json.dumps({"access_token": token.access_token, "refresh_token": token.refresh_token})
        with self.engine.begin() as conn:
            conn.execute(text("""
                INSERT INTO pipeline.tuya_tokens (access_id, ciphertext, renew_at, updated_at)
                VALUES (:a, :c, :r, now())
                ON CONFLICT (access_id) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, renew_at = EXCLUDED.renew_at,
                    updated_at = EXCLUDED.updated_at
            """), {"a": self.access_id, "c": self._fernet.encrypt(secret.encode()),
                   "r": datetime.fromtimestamp(token.renew_at, tz=timezone.utc)})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        key = f"lock_pipeline:tuya-token:{self.access_id}"
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
                conn.commit()
