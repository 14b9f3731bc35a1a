"""What the operator's commands ask of a running Dagster deployment, through its public GraphQL API."""

from __future__ import annotations

import time
import urllib.request
from datetime import datetime

from lock_pipeline.orchestration.dagster_internals import partition_range_tags
from lock_pipeline.orchestration.partitions import months_covering
from lock_pipeline.settings import Settings
from lock_pipeline.vocabulary import RunTag


def wait_for_webserver(host: str, port: int, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(2)
    return False


def launch_sync(host: str, port: int, settings: Settings, now: datetime, *, trigger: str,
                attempts: int = 1, pause_seconds: float = 3.0) -> str:
    """Launch the sync job over the whole sync window; returns the run id (it shows in the run history)."""
    from dagster_graphql import DagsterGraphQLClient

    months = months_covering(now, settings.timezone, settings.sync_days_back, settings.sync_days_ahead)
    tags = {**partition_range_tags(months.start, months.end), str(RunTag.TRIGGER): trigger}
    for attempt in range(attempts):
        try:
            return DagsterGraphQLClient(host, port_number=port).submit_job_execution("sync_job", tags=tags)
        except Exception:  # noqa: BLE001 - the code location may still be loading; the caller says how often to try
            if attempt + 1 == attempts:
                raise
            time.sleep(pause_seconds)
    raise AssertionError("unreachable")
