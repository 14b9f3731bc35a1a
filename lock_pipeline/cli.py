"""``lock-pipeline``: start the pipeline, and the few operator actions that belong on a terminal."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager

from lock_pipeline.settings import PROJECT_ROOT, SettingsError, load_settings, one_setting


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lock-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start Postgres (embedded unless configured), the sandboxes "
                                        "(unless Stays/Tuya are configured) and the Dagster UI and daemon")
    up.add_argument("--port", type=int, default=one_setting("ui_port"),
                    help="the Dagster UI's port (default LOCK_PIPELINE_UI_PORT, else 3000)")
    up.add_argument("--host", default=one_setting("ui_host"),
                    help="interface for the Dagster UI (default LOCK_PIPELINE_UI_HOST, else 127.0.0.1: loopback only)")
    up.set_defaults(handler=_up)

    migrate = commands.add_parser("migrate", help="apply the schema files in sql/ and exit")
    migrate.set_defaults(handler=_migrate)

    db_url = commands.add_parser("db-url", help="print the pipeline database's URL (for psql or a BI tool)")
    db_url.set_defaults(handler=_db_url)

    key = commands.add_parser("new-pin-key", help="print a new LOCK_PIPELINE_PIN_KEY")
    key.set_defaults(handler=_new_pin_key)

    reprocess = commands.add_parser("reprocess", help="restart a stay's PIN work now (failed codes get a fresh retry budget)")
    reprocess.add_argument("code", help="the stay's code, e.g. EV23J")
    reprocess.add_argument("--by", default=os.environ.get("USER", "cli"), help="who asked, for the audit trail")
    reprocess.set_defaults(handler=_reprocess)

    pin = commands.add_parser("pin", help="operator access to one PIN")
    pin_commands = pin.add_subparsers(dest="pin_command", required=True)
    show = pin_commands.add_parser("show", help="reveal a stay's current PIN (the reveal is recorded)")
    show.add_argument("code", help="the stay's code, e.g. EV23J")
    show.add_argument("--by", default=os.environ.get("USER", "cli"), help="who looked, for the audit trail")
    show.add_argument("--reason", default=None, help="why (e.g. guest called from the door)")
    show.set_defaults(handler=_pin_show)

    mapping = commands.add_parser("mapping", help="confirm, reject, set or unmap a listing's lock")
    mapping.add_argument("action", choices=["confirm", "reject", "set", "unmap"])
    mapping.add_argument("listing", help="the listing's code (see admin.lock_mappings) or Stays _id")
    mapping.add_argument("lock_id", nargs="?", help="Tuya device id, for `set`")
    mapping.add_argument("--by", default=os.environ.get("USER", "cli"), help="who decided, for the audit trail")
    mapping.set_defaults(handler=_mapping)
    return parser


@contextmanager
def _database():
    """The pipeline database: the configured server, or the embedded one (attached or started)."""
    from lock_pipeline.runtime import open_database
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.migrations import check_schema

    settings = load_settings()
    with ExitStack() as stack:
        engine = engine_for(open_database(settings, stack))
        check_schema(engine)
        yield settings, engine


def _reprocess(args: argparse.Namespace) -> int:
    """Make the stay's PIN work due now; the running sensor launches it within 30 s (an audited run)."""
    from lock_pipeline.access import store as access_store
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.stays.store import find_stay_by_code
    from lock_pipeline.vocabulary import EventAction

    with _database() as (_settings, engine), engine.begin() as conn:
        reservation_id = find_stay_by_code(conn, args.code)
        if reservation_id is None:
            print(f"no stay with code {args.code!r}: see admin.reservations for the codes", file=sys.stderr)
            return 1
        now = clock_from_environment().now()
        reset = access_store.request_retry(conn, reservation_id, run_id=None, now=now)
        access_store.record_event(conn, code_id=None, reservation_id=reservation_id, device_id="-",
                                  action=EventAction.REPROCESS, outcome="requested", run_id=None, at=now,
                                  detail=f"by {args.by} from the command line")
    print(f"{args.code}: {reset} code(s) reset; the access sensor launches the work within 30 s "
          f"(Dagster UI, Runs, tag lock_pipeline/stay={args.code.upper()})")
    return 0


def _pin_show(args: argparse.Namespace) -> int:
    from lock_pipeline.access import store as access_store
    from lock_pipeline.access.pins import PinVault
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.runtime import pin_key
    from lock_pipeline.stays.store import find_stay_by_code

    with _database() as (settings, engine), engine.begin() as conn:
        reservation_id = find_stay_by_code(conn, args.code)
        stored = access_store.current_pin(conn, reservation_id) if reservation_id else None
        if stored is None:
            print(f"no PIN for stay {args.code!r} (see admin.reservations for its access_state)", file=sys.stderr)
            return 1
        pin = PinVault(pin_key(settings)).decrypt(stored.pin_ciphertext)
        access_store.record_reveal(conn, stored, revealed_by=args.by, reason=args.reason,
                                   at=clock_from_environment().now())
    print(f"{stored.reservation_code}: {pin}  ({stored.state}; this reveal is recorded)")
    return 0


def _mapping(args: argparse.Namespace) -> int:
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.mapping.store import MappingError, decide

    try:
        with _database() as (_settings, engine), engine.begin() as conn:
            print(decide(conn, args.action, args.listing.strip(), args.lock_id, args.by, clock_from_environment().now()))
    except MappingError as error:
        print(f"mapping not changed: {error}", file=sys.stderr)
        return 1
    return 0


def _up(args: argparse.Namespace) -> int:
    from lock_pipeline.runtime import dagster_home, prepare

    settings = load_settings()
    print("lock-pipeline: starting (first start installs the schema, a few seconds)...", flush=True)
    runtime = prepare(settings)
    try:
        env = {**os.environ, **runtime.env, "DAGSTER_HOME": str(dagster_home(settings))}
        for note in runtime.notes:
            print(f"  {note}", flush=True)
        print(f"  data directory: {settings.home}", flush=True)
        print(f"  Dagster UI: http://{args.host}:{args.port}  (Ctrl+C stops everything)", flush=True)
        dagster = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", args.host, "-p", str(args.port),
             "-w", str(PROJECT_ROOT / "workspace.yaml")],
            env=env, cwd=env["DAGSTER_HOME"], start_new_session=True,
            # Started from a background job (nohup, `cmd &`), we inherit SIGINT ignored, and an
            # ignored signal stays ignored across exec: Dagster would never see our forwarded stop.
            preexec_fn=_default_sigint,
        )
        stopping = _forward_stop_signals(dagster)
        threading.Thread(target=_first_sync, args=(args.host, args.port, settings), daemon=True).start()
        return _wait_for(dagster, stopping)
    finally:
        runtime.close()


def _first_sync(host: str, port: int, settings) -> None:
    """Launch one sync as soon as the UI answers, so a fresh start has data before the first half hour."""
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.orchestration.commands import launch_sync, wait_for_webserver

    if not wait_for_webserver(host, port, timeout_seconds=180):
        return
    try:  # the code location may still be loading: try for about 90 s; the schedule covers a miss
        run_id = launch_sync(host, port, settings, clock_from_environment().now(), trigger="start", attempts=30)
    except Exception:  # noqa: BLE001
        return
    print(f"  first sync launched: run {run_id}", flush=True)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _forward_stop_signals(child: subprocess.Popen) -> threading.Event:
    """Ctrl+C or SIGTERM asks Dagster's whole process group to stop; the main thread waits."""
    stopping = threading.Event()

    def stop(signum, _frame):
        if child.poll() is None:
            os.kill(child.pid, signal.SIGINT)  # `dagster dev` stops its own children
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return stopping


def _wait_for(child: subprocess.Popen, stopping: threading.Event, grace_seconds: float = 30) -> int:
    """Wait for Dagster to exit; once asked to stop, give its children a bounded time, then kill."""
    deadline = None
    while child.poll() is None:
        if stopping.is_set() and deadline is None:
            deadline = time.monotonic() + grace_seconds
        if deadline is not None and time.monotonic() > deadline:
            os.killpg(child.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    return child.wait()


def _migrate(_args: argparse.Namespace) -> int:
    from lock_pipeline.runtime import open_database
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.migrations import apply_migrations

    settings = load_settings()
    with ExitStack() as stack:
        applied = apply_migrations(engine_for(open_database(settings, stack)), settings)
    print(f"applied {applied}; views and settings refreshed" if applied else "schema up to date; views and settings refreshed")
    return 0


def _db_url(_args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.database_url:
        print(settings.database_url)
        return 0
    from lock_pipeline.storage.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.home)
    url = server.start()
    server.detach()  # leave a running server running (and do not start one that stops at once)
    print(url.replace("postgresql+psycopg2://", "postgresql://"))
    return 0


def _new_pin_key(_args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
