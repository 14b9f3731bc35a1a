"""One Tuya token shared by every run through Postgres: token calls do not grow with runs."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from lock_pipeline.sandbox.seed import SeedLock
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.tuya.client import TuyaClient
from lock_pipeline.tuya.token_store import PostgresTokenStore
from lock_pipeline_tests.helpers import TEST_PIN_KEY

LOCK = SeedLock(device_id="ebshared000000000000001", name="Shared token lock")


@pytest.fixture
def cloud():
    with TuyaSandbox([LOCK]) as sandbox:
        yield sandbox


def client(cloud, store) -> TuyaClient:
    return TuyaClient(cloud.base_url, cloud.access_id, cloud.access_secret, verify=cloud.ca_cert_path,
                      backoff_seconds=0.01, token_store=store)


def token_calls(cloud) -> int:
    return sum(1 for _method, path in cloud.request_log if path.startswith("/v1.0/token"))


def test_many_clients_one_after_another_share_one_token(engine, cloud):
    store = PostgresTokenStore(engine, cloud.access_id, TEST_PIN_KEY)
    for _run in range(12):  # as 12 runs, each its own process and client
        with client(cloud, store) as tuya:
            tuya.get_device(LOCK.device_id)
    assert token_calls(cloud) == 1
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT ciphertext FROM pipeline.tuya_tokens")).scalar()
    assert stored and store.load().access_token.encode() not in bytes(stored)  # encrypted at rest


def test_clients_starting_together_fetch_one_token_between_them(engine, cloud):
    store = PostgresTokenStore(engine, cloud.access_id, TEST_PIN_KEY)
    errors = []

    def run() -> None:
        try:
            with client(cloud, store) as tuya:
                tuya.get_device(LOCK.device_id)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and token_calls(cloud) == 1  # one refresher at a time


def test_an_expired_shared_token_is_renewed_once_and_shared_again(engine, cloud):
    store = PostgresTokenStore(engine, cloud.access_id, TEST_PIN_KEY)
    with client(cloud, store) as tuya:
        tuya.get_device(LOCK.device_id)
    cloud.expire_tokens()  # the cloud now answers 1010 for it
    with client(cloud, store) as first:
        first.get_device(LOCK.device_id)
    with client(cloud, store) as second:
        second.get_device(LOCK.device_id)
    assert token_calls(cloud) == 2  # the first grant, and one renewal (by refresh token) for both clients


def test_a_token_stored_under_another_key_is_replaced_not_trusted(engine, cloud):
    from cryptography.fernet import Fernet

    old = PostgresTokenStore(engine, cloud.access_id, Fernet.generate_key().decode())
    with client(cloud, old) as tuya:
        tuya.get_device(LOCK.device_id)
    store = PostgresTokenStore(engine, cloud.access_id, TEST_PIN_KEY)
    assert store.load() is None
    with client(cloud, store) as tuya:
        tuya.get_device(LOCK.device_id)
    assert store.load() is not None and token_calls(cloud) == 2


def test_a_short_day_of_six_locks_costs_one_token_call_however_many_runs(database_url, tmp_path):
    """Measured before the shared token: 16 token calls of 38 requests in such a day (one per run)."""
    from datetime import date, timedelta

    from lock_pipeline_tests.harness import Harness, World, local

    day = date(2026, 11, 24)
    world = World()
    for index in range(6):
        listing, _lock = world.listing(index + 1, f"Rua do Dia {index + 1}")
        world.stay(f"DAY{index:02d}", listing, day + timedelta(days=index % 2), day + timedelta(days=2 + index % 2))
    h = Harness(database_url, world, tmp_path, local(day, 8))
    try:
        for step in range(24):  # 08:00 .. 19:30, every half hour: syncs, ticks and their runs
            h.step(local(day, 8) + timedelta(minutes=30 * step))
        calls = [path for _method, path in h.tuya.request_log]
        assert h.launched_runs >= 6 and len(calls) > 30
        assert sum(1 for path in calls if path.startswith("/v1.0/token")) == 1
    finally:
        h.close()
