"""A PIN never appears in a log, an event, metadata, an exception or a view; secrets stay secret.

With every delivery channel on (write-back, notifications with the PIN): the PIN reaches the channels and
nothing else."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dagster import DagsterInstance
from sqlalchemy import text

from lock_pipeline.orchestration.resources import TuyaResource
from lock_pipeline.sandbox.notifications import NotificationReceiver
from lock_pipeline_tests.harness import Harness, World, local
from lock_pipeline_tests.helpers import make_settings

from lock_pipeline_tests.test_access_lifecycle import D0
from lock_pipeline_tests.test_delivery import SECRET as NOTIFY_SECRET


def _every_text_value(engine) -> str:
    """Every text, varchar and jsonb value in every table and view of the database, concatenated."""
    chunks = []
    with engine.connect() as conn:
        columns = conn.execute(text("""
            SELECT table_schema, table_name, column_name FROM information_schema.columns
            WHERE table_schema IN ('pipeline', 'admin', 'public')
              AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')
        """)).all()
        for schema, table, column in columns:
            for value in conn.execute(text(f'SELECT "{column}"::text FROM "{schema}"."{table}"')).scalars():
                if value:
                    chunks.append(value)
    return "\n".join(chunks)


def test_no_pin_or_secret_in_event_log_compute_logs_or_database(database_url, tmp_path, caplog):
    world = World()
    for i in range(1, 4):
        listing_id, _ = world.listing(i, f"Sigilo {i}")
        world.stay(f"SEC0{i}", listing_id, D0, D0 + timedelta(days=2))
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    # Every channel on, the PIN in the notifications too: it must reach the channels and nothing else.
    receiver = NotificationReceiver(NOTIFY_SECRET).start()
    settings = make_settings(LOCK_PIPELINE_STAYS_WRITE_BACK="pin", LOCK_PIPELINE_NOTIFY_URL=receiver.url,
                             LOCK_PIPELINE_NOTIFY_SECRET=NOTIFY_SECRET, LOCK_PIPELINE_NOTIFY_INCLUDE_PIN="true")
    h = Harness(database_url, world, tmp_path, local(D0, 9), instance=instance, settings=settings)
    try:
        h.tuya.inject("throttle", count=2)
        h.settle()
        receiver.fail_next(1, 503)  # a failed attempt and its retry go through the logs too
        while h.deliver():
            h.move_to(h.now + timedelta(minutes=2))
        pins = [pin for i in range(1, 4) for _device, pin in h.pins_of(f"SEC0{i}")]
        assert len(pins) == 3 and all(len(pin) == 7 for pin in pins)
        assert sorted(event["data"]["pin"] for event in receiver.events()) == sorted(pins)  # the channel got them
        secrets = [h.tuya.access_secret, "sandbox-secret", NOTIFY_SECRET, NOTIFY_SECRET.removeprefix("whsec_")]

        events = []
        for run in instance.get_runs():
            events.extend(str(record) for record in instance.all_logs(run.run_id))
        event_text = "\n".join(events)
        assert "pin_actions_job" in event_text  # we really read the PIN runs' events
        assert "deliver_codes_job" in event_text and "stay_history" in event_text and "day_board" in event_text
        log_files = "\n".join(p.read_text(errors="ignore") for p in Path(tmp_path / "dagster_home").rglob("*") if p.is_file()
                              and p.suffix in {".out", ".err", ".log", ".txt", ".json", ""})
        database = _every_text_value(h.engine)
        assert "SEC01" in database
        for pin in pins:
            assert pin not in event_text, "a PIN reached the Dagster event log"
            assert pin not in log_files, "a PIN reached the compute logs"
            assert pin not in database, "a PIN reached a text column or view"
            assert pin not in caplog.text
        for secret in secrets:
            assert secret not in event_text and secret not in log_files and secret not in database
        with h.engine.connect() as conn:
            masked = conn.execute(text("SELECT pin_masked FROM admin.reservations WHERE reservation_code = 'SEC01'")).scalar()
        assert masked.startswith("•••••") and masked[-2:] == h.pins_of("SEC01")[0][1][-2:]
        with h.engine.connect() as conn:
            outbox = conn.execute(text("SELECT count(*) FROM pipeline.delivery_outbox WHERE state = 'delivered'")).scalar()
        assert outbox == 6  # 3 codes, each on both channels: the database above held their rows
    finally:
        h.close()
        receiver.stop()
        instance.dispose()


def test_reader_role_cannot_read_pin_ciphertexts(engine):
    with engine.connect() as conn:
        conn.execute(text("SET ROLE lock_pipeline_reader"))
        conn.execute(text("SELECT pin_masked, access_state FROM admin.reservations")).all()
        conn.execute(text("SELECT * FROM admin.attention")).all()
        try:
            conn.execute(text("SELECT pin_ciphertext FROM pipeline.access_codes")).all()
        except Exception as error:  # noqa: BLE001
            assert "permission denied" in str(error)
        else:
            raise AssertionError("the reader role read PIN ciphertexts")


def test_resource_reprs_and_config_hide_secrets():
    resource = TuyaResource(base_url="https://127.0.0.1:1", access_id="id", access_secret="s" * 32)
    with resource.client() as client:
        assert "s" * 32 not in repr(client)
