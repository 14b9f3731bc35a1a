"""Proof on this machine (issue 13): the wheel, installed in a fresh venv, runs as the production services.

What an operator does with deploy/systemd, done here without systemd (no systemd as PID 1, no Docker,
no Kubernetes in this workplace):

1. the wheel is built from exactly what `docker build` would send (the checkout filtered by
   .dockerignore), with `pip wheel --no-deps` as deploy/Dockerfile does;
2. it is installed non-editable into a fresh venv (`pip install --no-deps --no-index`); its
   dependencies come from this project's venv through a path line in a .pth file (no network), which
   does not run that venv's editable finder, so the wheel's copy of lock_pipeline is the one imported;
3. from a directory that is not the checkout, `lock-pipeline service-env` writes the services' file
   from the operator's settings (a Postgres by URL, the sandbox Stays and Tuya, started here, as
   their credentials), `lock-pipeline migrate` migrates a fresh database, and `lock-pipeline status`
   says nothing runs yet;
4. the four services start as separate processes, with the commands of deploy/systemd's ExecStart=
   lines (${VAR} expanded from that file, /opt/lock-pipeline/venv/bin/ mapped to the new venv) and
   only that file's environment: the gRPC code server, dagster-daemon, dagster-webserver and the
   webhook receiver;
5. `lock-pipeline sync` launches the full sync through the webserver; it succeeds; the daemon's
   sensor launches the PIN run and the PIN is on the sandbox lock; a booking made in Stays reaches the
   receiver as a webhook and is applied by its sensor's run; `lock-pipeline status` ends all well,
   naming that sync; deploy/docker-compose.yml's health checks pass against these processes.

Every wait is bounded and polls; nothing asserts a duration. Every process is stopped by its process
group (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lock_pipeline.sandbox.seed import Seed, SeedLock, hex_id, listing_record, reservation_record, tuya_device_id
from lock_pipeline.sandbox.stays_server import StaysSandbox
from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox
from lock_pipeline.stays.receiver import webhook_url
from lock_pipeline.storage.database import sqlalchemy_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT_VENV_BIN = "/opt/lock-pipeline/venv/bin/"
UNIT_STATE_DIR = "/var/lib/lock-pipeline"
SERVICES = ("code", "daemon", "webserver", "webhooks")  # deploy/systemd/lock-pipeline-<role>.service
# The dependencies' programs the units run (pip writes them into the venv's bin/ when it installs
# the dependencies; here the dependencies come through the .pth file, so their scripts are written here).
DEPENDENCY_PROGRAMS = ("dagster", "dagster-webserver", "dagster-daemon")
ZONE = ZoneInfo("America/Sao_Paulo")  # the account's zone: the default LOCK_PIPELINE_TIMEZONE
LOCATION = "lock_pipeline"

# Bounds, not expectations: generous for 2 busy cores.
COMMAND_TIMEOUT = 300
START_TIMEOUT = 240
RUN_TIMEOUT = 300


# --------------------------------------------------------------------------------------------------
# The wheel and the fresh venv
# --------------------------------------------------------------------------------------------------


def docker_build_context(dest: Path) -> Path:
    """The checkout as `docker build` sends it: .dockerignore's patterns left out."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]

    def ignored(relative: str) -> bool:
        name = PurePosixPath(relative).name
        return any(fnmatch(name, p[3:]) if p.startswith("**/") else fnmatch(relative, p.rstrip("/")) for p in patterns)

    def ignore(directory: str, names: list[str]) -> set[str]:
        base = Path(directory).relative_to(ROOT)
        return {n for n in names if ignored((base / n).as_posix())}

    shutil.copytree(ROOT, dest, symlinks=True, ignore=ignore)
    return dest


def run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = COMMAND_TIMEOUT,
        check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise AssertionError(f"`{shlex.join(argv)}` exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    source = docker_build_context(tmp / "context")
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)], env=env, cwd=tmp)
    [wheel] = dist.glob("lock_pipeline-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path, env: dict[str, str]) -> Path:
    """A new venv with the wheel installed non-editable, and this venv's packages as its dependencies."""
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], env=env, cwd=tmp)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], env=env, cwd=tmp)
    site_packages = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             env=env, cwd=tmp).stdout.strip())
    # A plain path line: the directory joins sys.path after the venv's own site-packages, and its .pth
    # files (the project venv's editable finder for lock_pipeline among them) are not run.
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "zz_lock_pipeline_dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    for program in DEPENDENCY_PROGRAMS:
        write_console_script(venv / "bin" / program, python, program)
    return venv


def write_console_script(path: Path, python: Path, program: str) -> None:
    """The script pip writes for a console entry point, for a dependency installed through the .pth."""
    [entry] = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == program]
    head, _, rest = entry.attr.partition(".")
    path.write_text(f"#!{python}\nimport sys\nfrom {entry.module} import {head}\n"
                    f"if __name__ == '__main__':\n    sys.exit({head}{'.' + rest if rest else ''}())\n",
                    encoding="utf-8")
    path.chmod(0o755)


# --------------------------------------------------------------------------------------------------
# The services, by their systemd units
# --------------------------------------------------------------------------------------------------


def unit_service(role: str) -> dict[str, str]:
    values, section = {}, None
    for line in (SYSTEMD / f"lock-pipeline-{role}.service").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def unit_command(role: str, env: dict[str, str], venv_bin: Path) -> list[str]:
    """The unit's ExecStart=, as systemd runs it: ${NAME} is one word from the EnvironmentFile."""
    argv = [re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}", lambda m: env[m.group(1)], word)
            for word in shlex.split(unit_service(role)["ExecStart"])]
    assert argv[0].startswith(UNIT_VENV_BIN), argv
    return [str(venv_bin / argv[0][len(UNIT_VENV_BIN):]), *argv[1:]]


def compose_health_checks(ports: dict[str, int], venv_bin: Path) -> dict[str, list[str]]:
    """The compose file's health checks of the lock_pipeline services, for processes on other ports."""
    import yaml

    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
    checks = {}
    for role in ("code", "daemon", "webserver"):
        test = compose["services"][role]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = [re.sub(r"\b(4000|3000)\b", lambda m: str(ports[m.group(1)]), word) for word in test[1:]]
        checks[role] = [str(venv_bin / argv[0]), *argv[1:]]
    return checks


class Services:
    """Separate processes, each the leader of its own process group (runs are children of the code server)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, role: str, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        with open(self.logs / f"{role}.log", "wb") as log:
            self.processes[role] = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)

    def check_running(self) -> None:
        for role, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"service {role} exited with {process.returncode}\n{self.tails()}")

    def tails(self, lines: int = 40) -> str:
        out = []
        for role in self.processes:
            said = (self.logs / f"{role}.log").read_text(encoding="utf-8", errors="replace").splitlines()
            out.append(f"--- {role} (last {lines} lines) ---\n" + "\n".join(said[-lines:]))
        return "\n".join(out)

    def stop(self, grace_seconds: float = 30) -> None:
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():  # whatever is left of each group (a run, a gRPC child)
            _signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], services: Services, timeout: float = START_TIMEOUT,
             pause: float = 1.0) -> Any:
    """Poll ``probe`` until it returns something truthy; a service that died or the deadline fails the test."""
    deadline, last_error = time.monotonic() + timeout, None
    while True:
        services.check_running()
        try:
            found = probe()
            if found:
                return found
        except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
            last_error = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last error: {last_error!r})\n{services.tails()}")
        time.sleep(pause)


def graphql(port: int, query: str, **variables: Any) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=15)
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise ValueError(body["errors"])
    return body["data"]


LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
RUN_QUERY = """
query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId jobName status tags { key value } } } }
"""
RUNS_QUERY = """
query ($job: String!) { runsOrError(filter: {pipelineName: $job}) { __typename
    ... on Runs { results { runId status tags { key value } } } } }
"""
RUN_ERRORS_QUERY = """
query ($id: ID!) { logsForRun(runId: $id) { __typename ... on EventConnection { events { __typename
    ... on MessageEvent { message level } } } } }
"""
DAEMONS_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
TERMINAL_FAILURES = {"FAILURE", "CANCELED", "CANCELING"}


def location_loaded(port: int) -> bool:
    """The webserver has the code location from the gRPC server (an error while that server starts is retried:
    the webserver reloads it, as it must when the units start together)."""
    workspace = graphql(port, LOCATION_QUERY)["workspaceOrError"]
    entry = {e["name"]: e for e in workspace.get("locationEntries", [])}.get(LOCATION)
    if entry is None or entry["loadStatus"] != "LOADED":
        return False
    loaded = entry["locationOrLoadError"]
    if loaded["__typename"] == "PythonError":
        raise ValueError(f"the code location is not loaded: {loaded['message'][:500]}")
    return True


def run_status(port: int, run_id: str) -> dict:
    found = graphql(port, RUN_QUERY, id=run_id)["runOrError"]
    assert found["__typename"] == "Run", found
    if found["status"] in TERMINAL_FAILURES:
        events = graphql(port, RUN_ERRORS_QUERY, id=run_id)["logsForRun"].get("events", [])
        errors = [e.get("message") for e in events if e.get("level") in ("ERROR", "CRITICAL")]
        raise AssertionError(f"run {run_id} ({found['jobName']}) ended {found['status']}: {errors[-10:]}")
    return found


def tags_of(run_: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run_["tags"]}


# --------------------------------------------------------------------------------------------------
# The account: two listings named like their locks (the mappings auto-confirm), a guest arriving today
# --------------------------------------------------------------------------------------------------


def small_account(today: date) -> tuple[Seed, list[tuple[str, str]]]:
    seed = Seed()
    places = []
    for index, name in enumerate(("Casa Azul Copacabana", "Studio Verde Pinheiros"), start=1):
        listing = listing_record(index, name, name, "Rua da Prova", str(100 + index), "", "São Paulo", seed=13)
        device_id = tuya_device_id("production-proof", index)
        seed.listings.append(listing)
        seed.locks.append(SeedLock(device_id=device_id, name=f"Fechadura {name}"))
        places.append((listing["_id"], device_id))
    seed.reservations.append(stay("PRF01", places[0][0], today, today + timedelta(days=2)))
    return seed, places


def stay(code: str, listing_id: str, check_in: date, check_out: date) -> dict:
    return reservation_record(reservation_id=hex_id("production-proof", code), code=code, listing_id=listing_id,
                              check_in=check_in, check_out=check_out, check_in_time="15:00", check_out_time="11:00",
                              guest_name="Maria Prova")


# --------------------------------------------------------------------------------------------------
# The proof
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def empty_database(postgres_server_url):
    """A database nobody migrated (the operator's new Postgres database), dropped afterwards."""
    name = f"lp_proof_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield str(make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False))
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_wheel_runs_as_the_production_services(tmp_path, empty_database):
    tooling_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    wheel = build_wheel(tmp_path, tooling_env)
    venv = fresh_venv(tmp_path, wheel, tooling_env)
    venv_bin = venv / "bin"

    # Nothing of the checkout or of this test's environment: a directory of its own, the new venv first.
    state_dir = tmp_path / "state"         # /var/lib/lock-pipeline: LOCK_PIPELINE_HOME, WorkingDirectory=
    elsewhere = tmp_path / "operator"      # where the operator types the commands
    for directory in (state_dir, elsewhere, tmp_path / "user-home"):
        directory.mkdir()
    base_env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path / "user-home"),
                "LANG": "C.UTF-8"}

    imported = run([str(venv_bin / "python"), "-c", "import lock_pipeline, lock_pipeline.package_files as f; "
                    "print(lock_pipeline.__file__); print(f.sql_dir()); print(f.template_path('workspace.grpc.yaml'))"],
                   env=base_env, cwd=elsewhere).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in imported), imported
    # Installed, the data directory defaults to the user's, never beside the package nor in the current directory.
    shown = run(["lock-pipeline", "settings"], env=base_env, cwd=elsewhere).stdout
    assert f"LOCK_PIPELINE_HOME={tmp_path / 'user-home' / '.local' / 'share' / 'lock_pipeline'}\n" in shown, shown
    # The wheel's declared requirements (names and bounds) are met by what it runs with.
    run([str(venv_bin / "python"), "-m", "pip", "check"], env=base_env, cwd=elsewhere)

    today = datetime.now(ZONE).date()
    seed, [(listing_1, lock_1), (listing_2, lock_2)] = small_account(today)
    ports = {"ui": free_port(), "code": free_port(), "webhooks": free_port()}
    token = secrets.token_urlsafe(32)
    client_id, client_secret = "proof-client", secrets.token_urlsafe(18)

    with ExitStack() as stack:
        stays = StaysSandbox(seed, client_id=client_id, client_secret=client_secret,
                             webhook_url=webhook_url(f"http://127.0.0.1:{ports['webhooks']}", token)).start()
        stack.callback(stays.stop)
        tuya = TuyaSandbox(seed.locks).start()
        stack.callback(tuya.stop)
        services = Services(tmp_path / "logs")
        stack.callback(services.stop)

        # Step 3 of deploy/systemd/lock-pipeline.target: the operator's settings in, the services' file out.
        operator_settings = {
            "LOCK_PIPELINE_HOME": str(state_dir),
            "LOCK_PIPELINE_DATABASE_URL": empty_database,
            "LOCK_PIPELINE_PIN_KEY": Fernet.generate_key().decode(),
            "LOCK_PIPELINE_WEBHOOK_TOKEN": token,
            "LOCK_PIPELINE_UI_PORT": str(ports["ui"]),
            "LOCK_PIPELINE_CODE_SERVER_PORT": str(ports["code"]),
            "LOCK_PIPELINE_WEBHOOK_PORT": str(ports["webhooks"]),
            "STAYS_BASE_URL": stays.base_url,
            "STAYS_CLIENT_ID": client_id,
            "STAYS_CLIENT_SECRET": client_secret,
            "TUYA_BASE_URL": tuya.base_url,
            "TUYA_ACCESS_ID": tuya.access_id,
            "TUYA_ACCESS_SECRET": tuya.access_secret,
            "REQUESTS_CA_BUNDLE": tuya.ca_cert_path,  # the sandbox cloud's private CA
        }
        written = run(["lock-pipeline", "service-env"], env={**base_env, **operator_settings}, cwd=elsewhere).stdout
        service_file = tmp_path / "service.env"
        service_file.write_text(written, encoding="utf-8")
        env_file = dict(line.split("=", 1) for line in written.splitlines() if line and not line.startswith("#"))
        assert env_file["DAGSTER_HOME"] == str(state_dir / "dagster")
        service_env = {**base_env, **env_file}  # what systemd gives a unit: its EnvironmentFile, nothing else

        # lock-pipeline-migrate.service
        migrated = run(unit_command("migrate", service_env, venv_bin), env=service_env, cwd=state_dir).stdout
        assert "schema: applied [1, 2, 3" in migrated, migrated
        workspace = (state_dir / "dagster" / "workspace.yaml").read_text(encoding="utf-8")
        assert f"port: {ports['code']}" in workspace and (state_dir / "dagster" / "dagster.yaml").is_file()

        before = run(["lock-pipeline", "status"], env=service_env, cwd=elsewhere, check=False)
        assert before.returncode == 1, before.stdout + before.stderr
        assert "last sync: none yet" in before.stdout and "Dagster: not reachable" in before.stdout

        assert unit_service("code")["WorkingDirectory"] == UNIT_STATE_DIR
        for role in SERVICES:
            services.start(role, unit_command(role, service_env, venv_bin), service_env, state_dir)

        wait_for("the webhook receiver", lambda: httpx.get(
            f"http://127.0.0.1:{ports['webhooks']}/stays/webhooks-health", timeout=5).status_code == 200, services)
        wait_for("the webserver with the code location loaded from the code server",
                 lambda: location_loaded(ports["ui"]), services, pause=2)

        synced = run(["lock-pipeline", "sync"], env=service_env, cwd=elsewhere)
        sync_run = re.search(r"sync launched: run ([0-9a-f-]{36})", synced.stdout).group(1)
        finished = wait_for("the sync run (queued, then launched by the daemon)",
                            lambda: run_status(ports["ui"], sync_run)["status"] == "SUCCESS" and
                            run_status(ports["ui"], sync_run), services, timeout=RUN_TIMEOUT, pause=2)
        assert finished["jobName"] == "full_sync_job" and tags_of(finished)["lock_pipeline/trigger"] == "cli"

        engine = create_engine(sqlalchemy_url(empty_database))
        stack.callback(engine.dispose)
        with engine.connect() as conn:
            sync_log = conn.execute(text("SELECT sync_id, status FROM pipeline.reconciliation_logs WHERE run_id = :r"),
                                    {"r": sync_run}).one()
            mapped = conn.execute(text("SELECT listing_id, device_id FROM pipeline.lock_mappings "
                                       "WHERE status = 'confirmed'")).all()
        assert sync_log.status == "success"
        assert sorted(map(tuple, mapped)) == sorted([(listing_1, lock_1), (listing_2, lock_2)])

        # A booking in Stays: its webhook reaches the receiver, whose sensor's run applies it.
        booking = stay("PRF02", listing_2, today + timedelta(days=1), today + timedelta(days=3))
        stays.put_reservation(booking)

        # The guest arriving today: the daemon's access sensor launches the PIN run, the PIN is on the lock.
        def pin_run() -> dict | None:
            runs = graphql(ports["ui"], RUNS_QUERY, job="pin_actions_job")["runsOrError"]["results"]
            done = [r for r in runs if r["status"] == "SUCCESS" and tags_of(r).get("lock_pipeline/stay") == "PRF01"
                    and tags_of(r).get("lock_pipeline/action") == "generate"]
            for r in runs:
                run_status(ports["ui"], r["runId"])  # a failed PIN run fails the test with its errors
            return done[0] if done else None

        pin_run_ = wait_for("a PIN run for PRF01 launched by the sensor", pin_run, services, timeout=RUN_TIMEOUT, pause=2)
        assert tags_of(pin_run_)["dagster/sensor_name"] == "pin_actions_sensor"
        assert tags_of(pin_run_)["lock_pipeline/lock"] == lock_1
        pins = wait_for("the PIN on the sandbox lock", lambda: tuya.pins(lock_1), services)
        with engine.connect() as conn:
            code = conn.execute(text("""
                SELECT c.state, c.pin_masked, c.valid_from, c.valid_until FROM pipeline.access_codes c
                JOIN pipeline.reservations r USING (reservation_id) WHERE r.code = 'PRF01'""")).one()
            created_by = conn.execute(text("""
                SELECT e.run_id FROM pipeline.access_code_events e JOIN pipeline.reservations r USING (reservation_id)
                WHERE r.code = 'PRF01' AND e.action = 'generate'""")).scalars().all()
        assert code.state in ("pending_on_lock", "active")
        assert created_by == [pin_run_["runId"]]  # the audit trail names the sensor's run
        assert [(int(p.effective.timestamp()), int(p.invalid.timestamp())) for p in pins] == \
            [(int(code.valid_from.timestamp()), int(code.valid_until.timestamp()))]
        assert code.pin_masked.endswith(pins[0].digits[-2:])

        assert stays.wait_for_webhooks(timeout=30)
        assert any(d.code == "PRF02" and d.delivered for d in stays.webhook_log), stays.webhook_log

        def webhook_applied():
            with engine.connect() as conn:
                return conn.execute(text("""
                    SELECT w.state, w.run_id, r.code FROM pipeline.stays_webhooks w
                    JOIN pipeline.reservations r ON r.reservation_id = w.reservation_id
                    WHERE w.reservation_ref = :ref AND w.state = 'applied'"""), {"ref": booking["_id"]}).first()

        applied = wait_for("the webhook applied by its sensor's run", webhook_applied, services, timeout=RUN_TIMEOUT,
                           pause=2)
        assert applied.code == "PRF02"
        assert run_status(ports["ui"], applied.run_id)["jobName"] == "stays_webhooks_job"
        wait_for("the booking's PIN on the other lock", lambda: tuya.pins(lock_2), services)

        # status: all well once the daemon's heartbeats are in and the new PINs are confirmed on their locks.
        def all_well():
            said = run(["lock-pipeline", "status"], env=service_env, cwd=elsewhere, check=False)
            return said if said.returncode == 0 else None

        after = wait_for("`lock-pipeline status` all well", all_well, services, timeout=RUN_TIMEOUT, pause=3)
        with engine.connect() as conn:  # ours, or a later one if the 30-minute schedule came meanwhile
            last = conn.execute(text("SELECT last_sync_id, status FROM admin.reconciliation_status")).one()
        assert last.last_sync_id >= sync_log.sync_id
        assert f"last sync: #{last.last_sync_id} {last.status}" in after.stdout, after.stdout
        assert "daemon: healthy" in after.stdout and "all well: nothing needs a person" in after.stdout
        assert "Dagster: not reachable" not in after.stdout

        # deploy/docker-compose.yml's health checks, against these services (its ports mapped to theirs).
        for role, argv in compose_health_checks({"4000": ports["code"], "3000": ports["ui"]}, venv_bin).items():
            wait_for(f"compose's {role} health check `{shlex.join(argv)}`",
                     lambda: run(argv, env=service_env, cwd=state_dir, check=False).returncode == 0, services, pause=3)
