"""Engines and URLs for the pipeline's Postgres and for Dagster's storage in the same server."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url


def sqlalchemy_url(url: str) -> str:
    """Pin the psycopg2 driver.

    SQLAlchemy 2.1 made psycopg 3 the default for ``postgresql://``; the project ships
    psycopg2 and dagster-postgres needs it (psycopg 3 breaks its ``NOTIFY``), so both the
    pipeline and Dagster use ``postgresql+psycopg2://``.
    """
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def redacted(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One pooled engine per URL per process (Dagster resources are rebuilt per step)."""
    return create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 10, "application_name": "lock_pipeline"},
    )
