"""Settings are validated at start with messages that name the fix; the Definitions load."""

from __future__ import annotations

import importlib
import sys

import pytest
from cryptography.fernet import Fernet

from lock_pipeline.cli import main
from lock_pipeline.settings import SettingsError, load_settings


def test_defaults():
    settings = load_settings({})
    assert settings.timezone == "America/Sao_Paulo" and settings.stays is None and settings.tuya is None
    assert (settings.sync_days_back, settings.sync_days_ahead, settings.access_lead_minutes) == (30, 365, 120)


@pytest.mark.parametrize("env, expected", [
    ({"LOCK_PIPELINE_TIMEZONE": "Brazil/Nowhere"}, "LOCK_PIPELINE_TIMEZONE"),
    ({"STAYS_BASE_URL": "ftp://x"}, "STAYS_BASE_URL"),
    ({"STAYS_BASE_URL": "https://acme.stays.net/external/v1"}, "STAYS_CLIENT_ID is missing"),
    ({"TUYA_ACCESS_ID": "x", "TUYA_ACCESS_SECRET": "short", "TUYA_REGION": "us"}, "32-character"),
    ({"TUYA_ACCESS_ID": "x", "TUYA_ACCESS_SECRET": "s" * 32, "TUYA_REGION": "mars"}, "TUYA_REGION='mars' is unknown"),
    ({"TUYA_ACCESS_ID": "x", "TUYA_ACCESS_SECRET": "s" * 32, "TUYA_BASE_URL": "http://x"}, "must be an https://"),
    ({"LOCK_PIPELINE_PIN_KEY": "not-a-key"}, "LOCK_PIPELINE_PIN_KEY"),
    ({"LOCK_PIPELINE_DATABASE_URL": "mysql://x"}, "postgresql://"),
    ({"LOCK_PIPELINE_SYNC_DAYS_AHEAD": "lots"}, "not a whole number"),
    ({"LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME": "25:00"}, "HH:MM"),
])
def test_a_wrong_setting_names_the_variable_and_the_fix(env, expected):
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert expected in str(error.value)


def test_several_problems_are_reported_together():
    with pytest.raises(SettingsError) as error:
        load_settings({"LOCK_PIPELINE_TIMEZONE": "x", "LOCK_PIPELINE_PIN_KEY": "y"})
    assert len(error.value.problems) == 2


def test_the_cli_stops_with_the_message_and_exit_code_2(monkeypatch, capsys):
    monkeypatch.setenv("LOCK_PIPELINE_TIMEZONE", "Mars/Olympus")
    assert main(["migrate"]) == 2
    assert "LOCK_PIPELINE_TIMEZONE" in capsys.readouterr().err


def test_definitions_load_with_the_schedule_targeting_the_sync_assets(monkeypatch):
    monkeypatch.setenv("LOCK_PIPELINE_DATABASE_URL", "postgresql://u@localhost/db")
    monkeypatch.setenv("STAYS_BASE_URL", "https://acme.stays.net/external/v1")
    monkeypatch.setenv("STAYS_CLIENT_ID", "id")
    monkeypatch.setenv("STAYS_CLIENT_SECRET", "secret")
    monkeypatch.setenv("TUYA_ACCESS_ID", "id")
    monkeypatch.setenv("TUYA_ACCESS_SECRET", "t" * 32)
    monkeypatch.setenv("TUYA_REGION", "us")
    monkeypatch.setenv("LOCK_PIPELINE_PIN_KEY", Fernet.generate_key().decode())
    sys.modules.pop("lock_pipeline.definitions", None)
    defs = importlib.import_module("lock_pipeline.definitions").defs
    schedule = defs.resolve_schedule_def("sync_every_30_minutes")
    assert schedule.cron_schedule == "*/30 * * * *"
    job = defs.resolve_job_def(schedule.job_name)
    assets = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert {"stays_near_term_reservations", "reconciliation_logs", "tuya_locks",
            "accommodation_lock_mappings", "lock_pin_audit"} <= assets
    assert "stays_reservations" not in assets  # the whole window is swept by the full sync, not every 30 minutes
    full = defs.resolve_schedule_def("full_sync")
    assert full.cron_schedule == "5 */12 * * *"
    assets = {key.to_user_string() for key in defs.resolve_job_def(full.job_name).asset_layer.selected_asset_keys}
    assert {"stays_listings", "stays_reservations", "reconciliation_logs", "tuya_locks",
            "accommodation_lock_mappings", "lock_pin_audit"} <= assets
    for name in ("pin_actions_sensor", "record_failed_runs"):
        defs.resolve_sensor_def(name)
    for name in ("pin_actions_job", "reprocess_stay_job", "mapping_decision_job"):
        defs.resolve_job_def(name)
    sys.modules.pop("lock_pipeline.definitions", None)


def test_definitions_refuse_to_load_without_credentials(monkeypatch):
    for name in ("STAYS_BASE_URL", "LOCK_PIPELINE_DATABASE_URL", "TUYA_ACCESS_ID", "LOCK_PIPELINE_PIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    sys.modules.pop("lock_pipeline.definitions", None)
    with pytest.raises(SettingsError, match="lock-pipeline up"):
        importlib.import_module("lock_pipeline.definitions")
    sys.modules.pop("lock_pipeline.definitions", None)


def test_the_schedule_asks_for_one_run_over_the_whole_window():
    from dagster import build_schedule_context

    from lock_pipeline.orchestration.resources import StaysResource, TuyaResource
    from lock_pipeline_tests.helpers import NOW, build_test_definitions

    unused = {"stays": StaysResource(base_url="http://127.0.0.1:9", client_id="x", client_secret="y"),
              "tuya": TuyaResource(base_url="https://127.0.0.1:9", access_id="x", access_secret="y" * 32)}
    defs = build_test_definitions("postgresql://u@localhost/unused", now=NOW, extra=unused)
    schedule = defs.resolve_schedule_def("full_sync")
    context = build_schedule_context(resources={k: defs.resources[k] for k in ("clock", "settings")})
    [request] = schedule.evaluate_tick(context).run_requests
    # 30 days back from 23 Nov 2026 and 365 ahead, as whole arrival months: one run, not fourteen.
    assert (request.partition_key_range.start, request.partition_key_range.end) == ("2026-10-01", "2027-11-01")


def test_the_readme_settings_table_is_what_the_settings_command_prints(capsys):
    """Each setting is declared once (settings.py); the README's table is generated from it, and this keeps
    the copy honest: a new or changed setting fails here until the README is regenerated."""
    from pathlib import Path

    assert main(["settings", "--markdown"]) == 0
    generated = capsys.readouterr().out.strip().splitlines()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").splitlines()
    start = readme.index(generated[0])
    assert readme[start:start + len(generated)] == generated, (
        "README.md's settings table differs from `lock-pipeline settings --markdown`: regenerate it")
