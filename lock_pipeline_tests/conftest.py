"""Shared fixtures: a real embedded Postgres for the session, a fresh migrated database per test.

Tests start everything they need themselves and never rely on a server left running.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lock_pipeline.storage.database import sqlalchemy_url
from lock_pipeline.storage.embedded import EmbeddedPostgres
from lock_pipeline.storage.migrations import apply_migrations

_TEMPLATE = "lp_template"
_counter = itertools.count()
_NEEDS_POSTGRES = {"postgres_server_url", "database_url", "engine"}


def pytest_collection_modifyitems(items):
    """A test that needs Postgres is an integration test (so is a module marked so: sandbox servers)."""
    for item in items:
        if _NEEDS_POSTGRES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of the session's embedded server (database ``lock_pipeline``), migrated template ready."""
    home = Path(tempfile.mkdtemp(prefix="lp-test-"))
    server = EmbeddedPostgres(home, delete_on_stop=True)
    url = server.start()
    admin = create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"'))
        conn.execute(text(f'CREATE DATABASE "{_TEMPLATE}"'))
    template_url = str(make_url(url).set(database=_TEMPLATE))
    template_engine = create_engine(sqlalchemy_url(template_url))
    apply_migrations(template_engine)
    template_engine.dispose()
    yield url
    admin.dispose()
    server.stop()


@pytest.fixture
def database_url(postgres_server_url):
    """A fresh, fully migrated database for one test, cloned from the template."""
    name = f"lp_test_{os.getpid()}_{next(_counter)}"
    # pre-ping: a test may restart the server (the season simulator's Postgres fault)
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"'))
    yield str(make_url(postgres_server_url).set(database=name))
    from lock_pipeline.storage.database import engine_for

    engine_for(str(make_url(postgres_server_url).set(database=name))).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(database_url):
    from lock_pipeline.storage.database import engine_for

    return engine_for(database_url)


@pytest.fixture
def made(database_url, tmp_path):
    """Harnesses on this test's database, closed at its end: ``made(world, start, **settings_env)``."""
    from lock_pipeline_tests.harness import Harness
    from lock_pipeline_tests.helpers import make_settings

    harnesses = []

    def make(world, start, **env: str):
        h = Harness(database_url, world, tmp_path / f"h{len(harnesses)}", start,
                    settings=make_settings(**env) if env else None)
        harnesses.append(h)
        return h

    yield make
    for h in harnesses:
        h.close()
