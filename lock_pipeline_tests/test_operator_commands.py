"""`lock-pipeline service-env`, `status` and `sync` without a running deployment.

service-env: the file every production service reads (systemd EnvironmentFile, docker --env-file) holds
every variable a service needs, and the secrets; no other command prints them. status: a health
check, so each thing that is wrong is named and the exit code is non-zero (a supervisor or a probe
runs it as is); exit 0 only when all is well. The same commands against running services:
test_production.py.
"""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from dagster import EnvVar
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lock_pipeline.cli import main
from lock_pipeline.orchestration.commands import DeploymentHealth, Instigator
from lock_pipeline.settings import load_settings, setting_specs
from lock_pipeline.status import build_status
from lock_pipeline.storage.database import sqlalchemy_url

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)

PIN_KEY = Fernet.generate_key().decode()
WEBHOOK_TOKEN = "w" * 20 + "-token-for-the-tests-0123456789"
STAYS_SECRET = "stays-client-secret-value"
TUYA_SECRET = "t" * 16 + "uyaSecretValue16"
DB_PASSWORD = "db-password-value"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What an operator gives `lock-pipeline service-env` (deploy/systemd/lock-pipeline.target, step 3)."""
    return {
        "LOCK_PIPELINE_HOME": str(tmp_path / "home"),
        "LOCK_PIPELINE_DATABASE_URL": f"postgresql://lock_pipeline:{DB_PASSWORD}@db.internal:5432/lock_pipeline",
        "LOCK_PIPELINE_PIN_KEY": PIN_KEY,
        "LOCK_PIPELINE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "LOCK_PIPELINE_WEBHOOK_PUBLIC_URL": "https://locks.example.com",
        "LOCK_PIPELINE_UI_PORT": "3100",
        "STAYS_BASE_URL": "https://acme.stays.net/external/v1",
        "STAYS_CLIENT_ID": "acme-login",
        "STAYS_CLIENT_SECRET": STAYS_SECRET,
        "TUYA_ACCESS_ID": "tuya-access-id",
        "TUYA_ACCESS_SECRET": TUYA_SECRET,
        "TUYA_REGION": "us",
        **extra,
    }


def use_only(monkeypatch, env: dict[str, str]) -> None:
    """The command sees exactly these settings (none inherited from the machine running the tests)."""
    for spec in setting_specs():
        monkeypatch.delenv(spec.env, raising=False)
    for name in ("DAGSTER_HOME", "LOCK_PIPELINE_DAGSTER_STORAGE_URL", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "REQUESTS_CA_BUNDLE", "LOCK_PIPELINE_CLOCK_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def parse_env_file(text_: str) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile reads them (comments and blank lines skipped)."""
    env = {}
    for line in text_.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"not a KEY=value line: {line!r}"
        env[key] = value
    return env


def service_env(monkeypatch, capsys, env: dict[str, str]) -> dict[str, str]:
    use_only(monkeypatch, env)
    assert main(["service-env"]) == 0
    return parse_env_file(capsys.readouterr().out)


# --------------------------------------------------------------------------------------------------
# service-env
# --------------------------------------------------------------------------------------------------


def test_service_env_holds_every_variable_a_service_reads(tmp_path, monkeypatch, capsys):
    given = production_env(tmp_path, REQUESTS_CA_BUNDLE=str(tmp_path / "private-ca.pem"))
    env = service_env(monkeypatch, capsys, given)

    # The services read exactly the settings the operator gave.
    assert load_settings(env) == load_settings(given)
    # The derived ones nobody should have to know.
    assert env["DAGSTER_HOME"] == str(tmp_path / "home" / "dagster")
    assert env["LOCK_PIPELINE_DAGSTER_STORAGE_URL"] == sqlalchemy_url(given["LOCK_PIPELINE_DATABASE_URL"])
    assert make_url(env["LOCK_PIPELINE_DAGSTER_STORAGE_URL"]).drivername == "postgresql+psycopg2"
    # A private CA given with the settings reaches the runs' Tuya calls.
    assert env["REQUESTS_CA_BUNDLE"] == given["REQUESTS_CA_BUNDLE"]

    # What Dagster's instance file names (dagster.yaml: `env: NAME`).
    instance = (ROOT / "lock_pipeline" / "templates" / "dagster.yaml").read_text(encoding="utf-8")
    named = set(re.findall(r"\benv:\s*([A-Z_][A-Z0-9_]*)", instance))
    assert named and named <= set(env)
    # What the systemd units expand (${NAME} in ExecStart=).
    units = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "deploy" / "systemd").glob("*.service"))
    expanded = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", units))
    assert {"DAGSTER_HOME", "LOCK_PIPELINE_UI_PORT", "LOCK_PIPELINE_CODE_SERVER_PORT"} <= expanded <= set(env)
    # What the code location's resources read as Dagster EnvVars when a run starts.
    from lock_pipeline.orchestration.definitions import default_resources

    env_vars = {value.env_var_name for resource in default_resources(load_settings(env)).values()
                for value in vars(resource).values() if isinstance(value, EnvVar)}
    assert {"LOCK_PIPELINE_DATABASE_URL", "LOCK_PIPELINE_PIN_KEY", "STAYS_CLIENT_SECRET"} <= env_vars <= set(env)
    # And the receiver's secret.
    assert env["LOCK_PIPELINE_WEBHOOK_TOKEN"] == WEBHOOK_TOKEN


def test_service_env_refuses_a_file_the_services_could_not_start_with(tmp_path, monkeypatch, capsys):
    env = production_env(tmp_path)
    for name in ("LOCK_PIPELINE_PIN_KEY", "LOCK_PIPELINE_WEBHOOK_TOKEN", "STAYS_BASE_URL", "STAYS_CLIENT_ID",
                 "STAYS_CLIENT_SECRET", "TUYA_ACCESS_ID", "TUYA_ACCESS_SECRET", "TUYA_REGION"):
        del env[name]
    use_only(monkeypatch, env)
    assert main(["service-env"]) == 2
    said = capsys.readouterr()
    assert said.out == ""  # not half a file
    for name in ("LOCK_PIPELINE_PIN_KEY", "LOCK_PIPELINE_WEBHOOK_TOKEN", "STAYS_BASE_URL", "TUYA_ACCESS_ID"):
        assert name in said.err


def test_secrets_are_printed_by_service_env_only(tmp_path, monkeypatch, capsys):
    given = production_env(tmp_path, LOCK_PIPELINE_UI_PORT=str(closed_port()))
    secrets = [PIN_KEY, WEBHOOK_TOKEN, STAYS_SECRET, TUYA_SECRET, DB_PASSWORD]
    env = service_env(monkeypatch, capsys, given)
    printed = "\n".join(f"{k}={v}" for k, v in env.items())
    assert all(secret in printed for secret in secrets)

    use_only(monkeypatch, given)
    assert main(["settings"]) == 0
    assert main(["sync"]) == 1  # no webserver: it says so
    assert main(["webhooks", "--print-url"]) == 0
    said = capsys.readouterr()
    shown = said.out + said.err
    assert "(set, hidden)" in shown and "LOCK_PIPELINE_UI_PORT" in shown
    leaked = [secret for secret in secrets if secret in shown and secret != WEBHOOK_TOKEN]
    assert leaked == []
    # The token is the path of the URL to register in Stays: --print-url prints it, on purpose; nothing else.
    assert shown.count(WEBHOOK_TOKEN) == 1 and f"https://locks.example.com/stays/webhooks/{WEBHOOK_TOKEN}" in shown


# --------------------------------------------------------------------------------------------------
# status and sync without the services
# --------------------------------------------------------------------------------------------------


def test_status_without_the_dagster_services_says_so_and_exits_1(database_url, tmp_path, monkeypatch, capsys):
    port = closed_port()
    use_only(monkeypatch, {"LOCK_PIPELINE_HOME": str(tmp_path / "home"), "LOCK_PIPELINE_DATABASE_URL": database_url,
                           "LOCK_PIPELINE_PIN_KEY": PIN_KEY, "LOCK_PIPELINE_UI_PORT": str(port)})
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "last sync: none yet" in out and "no Stays sync has run yet" in out
    assert "Dagster: not reachable" in out
    assert f"the Dagster webserver at http://127.0.0.1:{port} does not answer" in out
    assert "admin.attention: 0 item(s)" in out
    assert "2 thing(s) need a person" in out


def test_status_with_the_database_down_names_it_without_its_password(tmp_path, monkeypatch, capsys):
    url = f"postgresql://lock_pipeline:{DB_PASSWORD}@127.0.0.1:{closed_port()}/lock_pipeline"
    use_only(monkeypatch, {"LOCK_PIPELINE_HOME": str(tmp_path / "home"), "LOCK_PIPELINE_DATABASE_URL": url,
                           "LOCK_PIPELINE_PIN_KEY": PIN_KEY, "LOCK_PIPELINE_UI_PORT": str(closed_port())})
    assert main(["status"]) == 1
    said = capsys.readouterr()
    assert "database: NOT readable" in said.out
    assert "the pipeline database at postgresql://lock_pipeline:***@127.0.0.1" in said.out
    assert "does not answer" in said.out and "LOCK_PIPELINE_DATABASE_URL" in said.out
    assert DB_PASSWORD not in said.out + said.err and "Traceback" not in said.err


def test_status_on_a_database_never_migrated_says_to_migrate(postgres_server_url, tmp_path, monkeypatch, capsys):
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    name = f"lp_empty_{tmp_path.name[-12:].lower().replace('-', '_')}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        use_only(monkeypatch, {"LOCK_PIPELINE_HOME": str(tmp_path / "home"), "LOCK_PIPELINE_PIN_KEY": PIN_KEY,
                               "LOCK_PIPELINE_DATABASE_URL": str(make_url(postgres_server_url).set(database=name)),
                               "LOCK_PIPELINE_UI_PORT": str(closed_port())})
        assert main(["status"]) == 1
        out = capsys.readouterr().out
        assert "database: NOT readable" in out and "lock-pipeline migrate" in out
    finally:
        from lock_pipeline.storage.database import engine_for

        engine_for(str(make_url(postgres_server_url).set(database=name))).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_sync_without_the_webserver_says_where_it_looked_and_exits_1(tmp_path, monkeypatch, capsys):
    port = closed_port()
    use_only(monkeypatch, production_env(tmp_path, LOCK_PIPELINE_UI_PORT=str(port)))
    assert main(["sync"]) == 1
    err = capsys.readouterr().err
    assert f"could not launch the sync through the Dagster webserver at http://127.0.0.1:{port}" in err
    assert "dagster-webserver service" in err


# --------------------------------------------------------------------------------------------------
# status's verdict (build_status), case by case
# --------------------------------------------------------------------------------------------------

REQUIRED_DAEMONS = ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR")


def healthy(**changes) -> DeploymentHealth:
    fields = {
        "reachable": True,
        "daemons": {name: (True, NOW - timedelta(seconds=20)) for name in REQUIRED_DAEMONS},
        "schedules": [Instigator("sync_every_30_minutes", True, NOW + timedelta(minutes=12)),
                      Instigator("full_sync", True, NOW + timedelta(hours=3))],
        "sensors": [Instigator("pin_actions_sensor", True), Instigator("stays_webhooks_sensor", True)],
    }
    return DeploymentHealth(**{**fields, **changes})


def last_sync(**changes) -> dict:
    return {"last_sync_id": 41, "status": "success", "last_started_at": NOW - timedelta(minutes=18), "duration_ms": 5300,
            "fetched": 120, "created": 3, "updated": 2, "cancelled": 1, "missing": 0, "quarantined": 0,
            "last_success_at": NOW - timedelta(minutes=18), "next_scheduled_run": NOW + timedelta(minutes=12),
            **changes}


def test_status_is_all_well_only_when_nothing_needs_a_person():
    report = build_status(last_sync(), [], healthy(), NOW, "America/Sao_Paulo")
    assert report.exit_code == 0, report.text()
    text_ = report.text()
    assert "last sync: #41 success at 2026-11-23 14:42, 5.3 s; fetched 120, 3 new" in text_
    assert "daemon: healthy" in text_ and "schedule full_sync: on" in text_ and "sensor pin_actions_sensor: on" in text_
    assert text_.endswith("all well: nothing needs a person")


@pytest.mark.parametrize(("case", "health", "attention", "expected"), [
    ("daemon silent", healthy(daemons={n: (True, NOW - timedelta(minutes=10)) for n in REQUIRED_DAEMONS}), [],
     "the Dagster daemon is not running or not healthy"),
    ("no daemon at all", healthy(daemons={}), [], "no heartbeat"),
    ("schedule off", healthy(schedules=[Instigator("full_sync", False)]), [],
     "schedule full_sync is off: turn it on"),
    ("sensor off", healthy(sensors=[Instigator("pin_actions_sensor", False)]), [],
     "sensor pin_actions_sensor is off: turn it on"),
    ("code location not loaded", healthy(problem="schedules unavailable: RepositoryNotFoundError"), [],
     "schedules unavailable"),
    ("webserver down", DeploymentHealth(False, "the Dagster webserver at http://127.0.0.1:3000 does not answer"), [],
     "does not answer"),
    ("attention", healthy(), [{"issue": "pin_failed", "reservation_code": "EV23J", "listing_code": "DB09I",
                               "due_at": NOW + timedelta(hours=2), "what_to_do": "check the lock"}],
     "pin_failed EV23J DB09I (due 2026-11-23 17:00): check the lock"),
])
def test_status_names_each_problem_and_exits_1(case, health, attention, expected):
    report = build_status(last_sync(), attention, health, NOW, "America/Sao_Paulo")
    assert report.exit_code == 1, case
    assert expected in report.text(), report.text()


def test_status_with_the_database_unreadable_reports_that_and_not_a_missing_sync():
    report = build_status(None, [], healthy(), NOW, "America/Sao_Paulo", database_problem="the database is down")
    assert report.exit_code == 1
    assert "the database is down" in report.text() and "no Stays sync has run yet" not in report.text()
    assert "admin.attention: 0 item(s)" not in report.text()

