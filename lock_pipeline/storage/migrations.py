"""The schema, applied by the project itself: versioned tables, re-applied views, published settings.

- ``sql/migrations/NNN_name.sql``: tables, indexes, roles. Each runs once, in its own transaction.
- ``sql/views/*.sql``: each view (and the functions they use) in one file, re-applied in file-name
  order on every migrate, so a change to a view is a diff of that file, not a copy in a new
  migration. A view whose columns changed incompatibly is dropped and created again.
- ``pipeline.settings``: the cadences, horizons and settings the views read (settings.py).

Everything runs under one advisory lock, so two processes starting together cannot race. The code
refuses a database whose schema is newer than the files it ships, or whose views are not the
ones it ships (run ``lock-pipeline migrate``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from lock_pipeline.package_files import sql_dir
from lock_pipeline.settings import Settings, published_settings

SQL_DIR = sql_dir()
_MIGRATION_LOCK_KEY = 0x4C4F434B  # "LOCK": one advisory lock key for schema changes
_FILE_PATTERN = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_VIEW_NAME = re.compile(r"CREATE OR REPLACE VIEW\s+([a-z_]+\.[a-z_]+)", re.IGNORECASE)


class SchemaError(RuntimeError):
    """The database schema is not one this code can run against."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def available_migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    folder = sql_dir / "migrations"
    if not folder.is_dir():
        raise SchemaError(f"schema files not found at {folder}: reinstall lock_pipeline (its wheel carries them)")
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise SchemaError(f"{path.name} in {folder} is not named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"schema files in {folder} must be numbered 001, 002, ... without gaps (found {versions})")
    return found


def view_files(sql_dir: Path = SQL_DIR) -> list[Path]:
    """The view files in the order they are applied (a view comes after the views it reads)."""
    return sorted((sql_dir / "views").glob("*.sql"))


def views_checksum(sql_dir: Path = SQL_DIR) -> str:
    digest = hashlib.sha256()
    for path in view_files(sql_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def required_version(sql_dir: Path = SQL_DIR) -> int:
    return len(available_migrations(sql_dir))


def current_version(conn: Connection) -> int:
    exists = conn.execute(text("SELECT to_regclass('pipeline.schema_migrations')")).scalar()
    if exists is None:
        return 0
    return int(conn.execute(text("SELECT coalesce(max(version), 0) FROM pipeline.schema_migrations")).scalar())


def apply_migrations(engine: Engine, settings: Settings | None = None, sql_dir: Path = SQL_DIR) -> list[int]:
    """Bring tables up to date, re-apply the views, publish the settings; return the versions applied now.

    ``settings`` are what the views will read (pipeline.settings); without them, the defaults.
    """
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
                    _run_script(conn, migration.path.read_text())
                    conn.execute(
                        text("INSERT INTO pipeline.schema_migrations (version, name) VALUES (:v, :n)"),
                        {"v": migration.version, "n": migration.name},
                    )
                applied.append(migration.version)
            with conn.begin():
                publish_settings(conn, settings or Settings())
                _apply_views(conn, sql_dir)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()
    return applied


def publish_settings(conn: Connection, settings: Settings) -> None:
    """Write what the views read (cadences, horizons, the non-secret settings) to pipeline.settings."""
    rows = [{"name": name, "value": value, "unit": unit} for name, (value, unit) in published_settings(settings).items()]
    conn.execute(text("""
        INSERT INTO pipeline.settings (name, value, unit, published_at) VALUES (:name, :value, :unit, now())
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, published_at = now()
        WHERE (pipeline.settings.value, pipeline.settings.unit) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.unit)
    """), rows)


def check_schema(engine: Engine, sql_dir: Path = SQL_DIR) -> int:
    """Fail with a clear message unless the database is exactly at the version (and views) this code needs."""
    needed = required_version(sql_dir)
    with engine.connect() as conn:
        version = current_version(conn)
        _refuse_newer(version, needed)
        if version < needed:
            raise SchemaError(
                f"database schema is at version {version}, this code needs {needed}: "
                "start with `lock-pipeline up` or run `lock-pipeline migrate`"
            )
        applied = conn.execute(text("SELECT checksum FROM pipeline.schema_views")).scalar()
    if applied != views_checksum(sql_dir):
        raise SchemaError("the database's admin views are not the ones this code ships: run `lock-pipeline migrate`")
    return version


def _apply_views(conn: Connection, sql_dir: Path) -> None:
    """Re-create every view from its file; a view whose columns changed is dropped and created again."""
    checksum = views_checksum(sql_dir)
    if conn.execute(text("SELECT checksum FROM pipeline.schema_views")).scalar() == checksum:
        return
    for path in view_files(sql_dir):
        body = path.read_text()
        savepoint = conn.begin_nested()
        try:
            _run_script(conn, body)
            savepoint.commit()
        except DBAPIError:
            savepoint.rollback()
            names = _VIEW_NAME.findall(body)
            if not names:
                raise
            for name in names:  # views after it in the order that read it are dropped too, and re-created below
                _run_script(conn, f"DROP VIEW IF EXISTS {name} CASCADE")
            _run_script(conn, body)
    conn.execute(text("""
        INSERT INTO pipeline.schema_views (singleton, checksum, applied_at) VALUES (true, :c, now())
        ON CONFLICT (singleton) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = EXCLUDED.applied_at
    """), {"c": checksum})


def _run_script(conn: Connection, sql: str) -> None:
    """A schema file as written: through the driver without parameters, so a literal % is just a %."""
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(sql)


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
            "upgrade lock_pipeline (pip install the newer release) before running it against this database"
        )
