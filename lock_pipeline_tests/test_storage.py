from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import pytest

from lock_pipeline.storage.database import sqlalchemy_url
from lock_pipeline.storage.migrations import (
    SchemaError,
    apply_migrations,
    check_schema,
    required_version,
)


def test_migrations_are_idempotent_and_versioned(engine):
    assert apply_migrations(engine) == []  # already at head from the template
    assert check_schema(engine) == required_version()
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM pipeline.schema_migrations ORDER BY 1")).scalars().all()
    assert versions == list(range(1, required_version() + 1))


def test_fresh_database_is_migrated_from_zero(postgres_server_url):
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "lp_fresh"'))
        conn.execute(text('CREATE DATABASE "lp_fresh"'))
    engine = create_engine(sqlalchemy_url(str(make_url(postgres_server_url).set(database="lp_fresh"))))
    try:
        with pytest.raises(SchemaError, match="version 0"):
            check_schema(engine)
        assert apply_migrations(engine) == list(range(1, required_version() + 1))
        assert check_schema(engine) == required_version()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text('DROP DATABASE "lp_fresh" WITH (FORCE)'))
        admin.dispose()


def test_refuses_a_schema_newer_than_the_code(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pipeline.schema_migrations (version, name) VALUES (999, 'from_the_future')"))
    with pytest.raises(SchemaError, match="newer than"):
        check_schema(engine)
    with pytest.raises(SchemaError, match="newer than"):
        apply_migrations(engine)


def test_reader_role_reads_admin_views_only(engine):
    with engine.begin() as conn:
        conn.execute(text("SET ROLE lock_pipeline_reader"))
        conn.execute(text("SELECT * FROM admin.reservations")).all()
        conn.execute(text("SELECT * FROM admin.reconciliation_status")).all()
        conn.execute(text("RESET ROLE"))
    for forbidden in ("pipeline.reservations", "pipeline.listings", "pipeline.reconciliation_logs"):
        with engine.connect() as conn:
            conn.execute(text("SET ROLE lock_pipeline_reader"))
            with pytest.raises(Exception, match="permission denied"):
                conn.execute(text(f"SELECT * FROM {forbidden}")).all()
