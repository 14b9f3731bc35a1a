"""Test helpers: build the real Definitions against test resources and run jobs in process."""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import DagsterInstance, Definitions
from cryptography.fernet import Fernet

from lock_pipeline.orchestration.dagster_internals import partition_range_tags
from lock_pipeline.orchestration.definitions import build_definitions
from lock_pipeline.orchestration.partitions import months_covering
from lock_pipeline.orchestration.resources import (
    ClockResource,
    PinVaultResource,
    PostgresResource,
    SettingsResource,
    StaysResource,
    TuyaResource,
)
from lock_pipeline.settings import load_settings

# Monday 23 Nov 2026, 15:00 in São Paulo.
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)


TEST_PIN_KEY = Fernet.generate_key().decode()


def tuya_resource(sandbox, **overrides) -> TuyaResource:
    options = {"timeout_seconds": 2.0, "backoff_seconds": 0.01, **overrides}
    return TuyaResource(base_url=sandbox.base_url, access_id=sandbox.access_id, access_secret=sandbox.access_secret,
                        ca_bundle=sandbox.ca_cert_path, **options)


def make_tuya_client(sandbox, **overrides):
    """A real TuyaClient on the sandbox cloud, with short waits (a test's loopback answers at once)."""
    from lock_pipeline.tuya.client import TuyaClient

    options = dict(timeout=2.0, max_attempts=3, backoff_seconds=0.01, verify=sandbox.ca_cert_path)
    options.update(overrides)
    return TuyaClient(sandbox.base_url, sandbox.access_id, sandbox.access_secret, **options)


def make_settings(**env: str):
    base = {"LOCK_PIPELINE_HOME": "/tmp/lock-pipeline-tests-unused"}
    base.update(env)
    return load_settings(base)


def build_test_definitions(database_url: str, *, stays=None, tuya=None, now: datetime = NOW,
                           settings=None, extra: dict | None = None) -> Definitions:
    settings = settings or make_settings()
    resources: dict[str, object] = {
        "postgres": PostgresResource(url=database_url),
        "clock": ClockResource(frozen_at=now.isoformat()),
        "settings": SettingsResource.of(settings),
    }
    if stays is not None:
        resources["stays"] = StaysResource(base_url=stays.base_url, client_id="sandbox-client",
                                           client_secret="sandbox-secret", backoff_seconds=0.01,
                                           timeout_seconds=2.0)
    if tuya is not None:
        resources["tuya"] = tuya_resource(tuya)
    resources["pin_vault"] = PinVaultResource(key=TEST_PIN_KEY)
    resources.update(extra or {})
    return build_definitions(settings, resources=resources)


def run_sync(defs: Definitions, *, now: datetime = NOW, instance: DagsterInstance | None = None,
             raise_on_error: bool = True):
    """What the full-sync schedule launches: one run over every month of the sync window."""
    config = defs.resources["settings"].get()
    months = months_covering(now, config.timezone, config.sync_days_back, config.sync_days_ahead)
    job = defs.resolve_job_def("full_sync_job")
    return job.execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        tags=partition_range_tags(months.start, months.end),
        raise_on_error=raise_on_error,
    )
