"""Versioned schema files in sql/, applied by the project itself.

Each ``sql/NNN_name.sql`` runs once, in its own transaction, under an advisory lock so
two processes starting together cannot race. The code refuses a database whose schema is
newer than the files it ships (an older checkout against a newer deployment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from lock_pipeline.settings import PROJECT_ROOT

SQL_DIR = PROJECT_ROOT / "sql"
_MIGRATION_LOCK_KEY = 0x4C4F434B  # "LOCK": one advisory lock key for schema changes
_FILE_PATTERN = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class SchemaError(RuntimeError):
    """The database schema is not one this code can run against."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise SchemaError(f"schema files not found at {sql_dir}: install the project with `pip install -e .` from its checkout")
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise SchemaError(f"{path.name} in {sql_dir} is not named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"schema files in {sql_dir} must be numbered 001, 002, ... without gaps (found {versions})")
    return found


def required_version(sql_dir: Path = SQL_DIR) -> int:
    return len(available_migrations(sql_dir))


def current_version(conn: Connection) -> int:
    exists = conn.execute(text("SELECT to_regclass('pipeline.schema_migrations')")).scalar()
    if exists is None:
        return 0
    return int(conn.execute(text("SELECT coalesce(max(version), 0) FROM pipeline.schema_migrations")).scalar())


def apply_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[int]:
    """Bring the schema up to date; return the versions applied now."""
    migrations = available_migrations(sql_dir)
    applied: list[int] = []
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            conn.commit()
            _ensure_version_table(conn)
            version = current_version(conn)
            conn.commit()
            _refuse_newer(version, len(migrations))
            for migration in migrations:
                if migration.version <= version:
                    continue
                with conn.begin():
                    conn.exec_driver_sql(migration.path.read_text())
                    conn.execute(
                        text("INSERT INTO pipeline.schema_migrations (version, name) VALUES (:v, :n)"),
                        {"v": migration.version, "n": migration.name},
                    )
                applied.append(migration.version)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()
    return applied


def check_schema(engine: Engine, sql_dir: Path = SQL_DIR) -> int:
    """Fail with a clear message unless the database is exactly at the version this code needs."""
    needed = required_version(sql_dir)
    with engine.connect() as conn:
        version = current_version(conn)
    _refuse_newer(version, needed)
    if version < needed:
        raise SchemaError(
            f"database schema is at version {version}, this code needs {needed}: "
            "start with `lock-pipeline up` or run `lock-pipeline migrate`"
        )
    return version


def _ensure_version_table(conn: Connection) -> None:
    with conn.begin():
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS pipeline"))
        conn.execute(text(
            "CREATE TABLE IF NOT EXISTS pipeline.schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        ))


def _refuse_newer(version: int, known: int) -> None:
    if version > known:
        raise SchemaError(
            f"database schema is at version {version}, newer than the {known} this code knows: "
            "upgrade lock_pipeline (git pull && pip install -e .) before running it against this database"
        )
