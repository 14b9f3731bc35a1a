"""``lock-pipeline``: start the pipeline, and the few operator actions that belong on a terminal."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from lock_pipeline.settings import PROJECT_ROOT, SettingsError, load_settings


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
    up.add_argument("--port", type=int, default=int(os.environ.get("LOCK_PIPELINE_UI_PORT", "3000")))
    up.add_argument("--host", default=os.environ.get("LOCK_PIPELINE_UI_HOST", "127.0.0.1"),
                    help="interface for the Dagster UI (default 127.0.0.1: loopback only)")
    up.set_defaults(handler=_up)

    migrate = commands.add_parser("migrate", help="apply the schema files in sql/ and exit")
    migrate.set_defaults(handler=_migrate)

    key = commands.add_parser("new-pin-key", help="print a new LOCK_PIPELINE_PIN_KEY")
    key.set_defaults(handler=_new_pin_key)
    return parser


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
            env=env, cwd=str(PROJECT_ROOT), start_new_session=True,
        )
        _forward_stop_signals(dagster)
        return dagster.wait()
    finally:
        runtime.close()


def _forward_stop_signals(child: subprocess.Popen) -> None:
    """Stop Dagster's whole process group on Ctrl+C or SIGTERM; its children take a few seconds."""

    def stop(signum, _frame):
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGINT)
            deadline = time.monotonic() + 30
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def _migrate(_args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from lock_pipeline.runtime import open_database
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.migrations import apply_migrations

    settings = load_settings()
    with ExitStack() as stack:
        applied = apply_migrations(engine_for(open_database(settings, stack)))
    print(f"applied {applied}" if applied else "schema already up to date")
    return 0


def _new_pin_key(_args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
