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

from lock_pipeline.settings import SettingsError, load_settings, one_setting


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

    migrate = commands.add_parser("migrate", help="bring the database schema up to date and write the Dagster "
                                                  "instance files for the production services ($DAGSTER_HOME)")
    migrate.set_defaults(handler=_migrate)

    service_env = commands.add_parser("service-env", help="print the environment the production services need, as "
                                                          "KEY=value lines (an EnvironmentFile or docker --env-file)")
    service_env.set_defaults(handler=_service_env)

    sync = commands.add_parser("sync", help="launch a sync of the whole sync window now, through the running "
                                            "Dagster deployment (it shows in the run history)")
    sync.set_defaults(handler=_sync)

    status = commands.add_parser("status", help="last sync, next sync, daemon, schedule and sensors, and what "
                                                "needs a person; exits 1 when something does (a health check)")
    status.set_defaults(handler=_status)

    webhooks = commands.add_parser("webhooks", help="run the Stays webhook receiver (POST /stays/webhooks/{token}) "
                                                    "alone, for production behind a TLS reverse proxy")
    webhooks.add_argument("--host", default=one_setting("webhook_host"),
                          help="interface (default LOCK_PIPELINE_WEBHOOK_HOST, else 127.0.0.1)")
    webhooks.add_argument("--port", type=int, default=one_setting("webhook_port"),
                          help="port (default LOCK_PIPELINE_WEBHOOK_PORT, else 3001)")
    webhooks.add_argument("--print-url", action="store_true",
                          help="print the URL to register in Stays (App Center > webhooks) and exit")
    webhooks.set_defaults(handler=_webhooks)

    sandbox = commands.add_parser("sandbox", help="change the running sandbox's Stays data (the embedded default), "
                                                  "as a guest or the operator would in Stays")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    book = sandbox_commands.add_parser("book", help="a new booking; Stays sends its webhook at once")
    book.add_argument("listing", help="the listing's code (admin.lock_mappings)")
    book.add_argument("--check-in", default=None, help="YYYY-MM-DD (default today)")
    book.add_argument("--nights", type=int, default=2)
    book.add_argument("--check-in-time", default=None, help="HH:MM (default: the listing's)")
    book.add_argument("--guest", default="Visitante Teste")
    book.set_defaults(handler=_sandbox_book)
    cancel = sandbox_commands.add_parser("cancel", help="cancel a booking")
    cancel.add_argument("code", help="the stay's code")
    cancel.set_defaults(handler=_sandbox_cancel)
    move = sandbox_commands.add_parser("move", help="change a booking's dates")
    move.add_argument("code", help="the stay's code")
    move.add_argument("--check-in", default=None, help="YYYY-MM-DD")
    move.add_argument("--check-out", default=None, help="YYYY-MM-DD")
    move.set_defaults(handler=_sandbox_move)
    show_stay = sandbox_commands.add_parser("show", help="a reservation as the sandbox's Stays API returns it, with its "
                                                         "custom fields by name (what write-back wrote)")
    show_stay.add_argument("code", help="the stay's code")
    show_stay.set_defaults(handler=_sandbox_show)
    notifications = sandbox_commands.add_parser(
        "notifications", help="a tiny local receiver for the signed code events (LOCK_PIPELINE_NOTIFY_URL): prints "
                              "each event it verified with the secret")
    notifications.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    notifications.add_argument("--port", type=int, default=8787, help="port (default 8787)")
    notifications.add_argument("--secret", default=os.environ.get("LOCK_PIPELINE_NOTIFY_SECRET"),
                               help="the whsec_ secret (default LOCK_PIPELINE_NOTIFY_SECRET)")
    notifications.set_defaults(handler=_sandbox_notifications)

    backup = commands.add_parser("backup-code", help="a stay's offline backup code: clear it at the lock when the stay "
                                                     "no longer has access (it cannot be deleted remotely)")
    backup_commands = backup.add_subparsers(dest="backup_command", required=True)
    clear = backup_commands.add_parser("clear", help="print the code that, typed at the lock, clears the stay's "
                                                     "backup code (Tuya clear_one); recorded")
    clear.add_argument("code", help="the stay's code")
    clear.add_argument("--by", default=os.environ.get("USER", "cli"), help="who asked, for the audit trail")
    clear.set_defaults(handler=_backup_clear)
    cleared = backup_commands.add_parser("cleared", help="confirm the clear code was typed at the lock "
                                                         "(admin.attention stops listing it)")
    cleared.add_argument("code", help="the stay's code")
    cleared.add_argument("--by", default=os.environ.get("USER", "cli"), help="who did it, for the audit trail")
    cleared.set_defaults(handler=_backup_cleared)

    settings = commands.add_parser("settings", help="every setting: its value here, default and meaning")
    settings.add_argument("--markdown", action="store_true", help="the README's settings table")
    settings.set_defaults(handler=_settings)

    db_url = commands.add_parser("db-url", help="print the pipeline database's URL (for psql or a BI tool)")
    db_url.set_defaults(handler=_db_url)

    key = commands.add_parser("new-pin-key", help="print a new LOCK_PIPELINE_PIN_KEY")
    key.set_defaults(handler=_new_pin_key)

    notify_secret = commands.add_parser("new-notify-secret", help="print a new LOCK_PIPELINE_NOTIFY_SECRET (whsec_...)")
    notify_secret.set_defaults(handler=_new_notify_secret)

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

    _listing_and_lock_parsers(commands)

    mapping = commands.add_parser("mapping", help="confirm, reject, set or unmap a listing's lock")
    mapping.add_argument("action", choices=["confirm", "reject", "set", "unmap"])
    mapping.add_argument("listing", help="the listing's code (see admin.lock_mappings) or Stays _id")
    mapping.add_argument("lock_id", nargs="?", help="Tuya device id, for `set`")
    mapping.add_argument("--by", default=os.environ.get("USER", "cli"), help="who decided, for the audit trail")
    mapping.set_defaults(handler=_mapping)
    return parser


def _listing_and_lock_parsers(commands) -> None:
    """A listing's and a lock's own settings (lock_pipeline/overrides.py); each change is recorded."""
    by = {"default": os.environ.get("USER", "cli"), "help": "who decided, for the audit trail"}
    listing = commands.add_parser("listing", help="a listing's settings: show them, set or reset its own")
    listing_commands = listing.add_subparsers(dest="listing_command", required=True)
    show = listing_commands.add_parser("show", help="every effective setting and where it comes from "
                                                    "(default, account setting or the listing's own)")
    show.add_argument("code", help="the listing's code (see admin.listings) or Stays _id")
    show.set_defaults(handler=_listing_show)
    set_ = listing_commands.add_parser("set", help="set the listing's own settings (the rest follow the account)")
    set_.add_argument("code", help="the listing's code (see admin.listings) or Stays _id")
    set_.add_argument("--lead-minutes", metavar="N", help="access opens N minutes before check-in (0..1440)")
    set_.add_argument("--grace-minutes", metavar="N", help="access ends N minutes after check-out (0..1440)")
    set_.add_argument("--time-zone", metavar="ZONE", help="the listing's IANA zone, e.g. America/Manaus")
    set_.add_argument("--check-in-time", metavar="HH:MM", help="check-in time when Stays sends none")
    set_.add_argument("--check-out-time", metavar="HH:MM", help="check-out time when Stays sends none")
    set_.add_argument("--by", **by)
    set_.set_defaults(handler=_listing_set)
    reset = listing_commands.add_parser("reset", help="the listing follows the account setting again")
    reset.add_argument("code", help="the listing's code (see admin.listings) or Stays _id")
    reset.add_argument("--setting", metavar="NAME", action="append",
                       help="only this one (lead-minutes, grace-minutes, time-zone, check-in-time, check-out-time); "
                            "repeatable; default: every one")
    reset.add_argument("--by", **by)
    reset.set_defaults(handler=_listing_reset)

    lock = commands.add_parser("lock", help="a lock's settings: show them, set its PIN length")
    lock_commands = lock.add_subparsers(dest="lock_command", required=True)
    show = lock_commands.add_parser("show", help="the lock's PIN length and where it comes from, what its cloud "
                                                 "asked for, its listing")
    show.add_argument("device_id", help="Tuya device id (see admin.locks)")
    show.set_defaults(handler=_lock_show)
    set_ = lock_commands.add_parser("set", help="set the lock's PIN length; the next new PIN on it has that many "
                                                "digits")
    set_.add_argument("device_id", help="Tuya device id (see admin.locks)")
    set_.add_argument("--pin-length", metavar="6|7|8", required=True,
                      help="6 for Zigbee and Bluetooth locks, 7 for Wi-Fi locks (Tuya's docs), or 8")
    set_.add_argument("--by", **by)
    set_.set_defaults(handler=_lock_set)


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
    from zoneinfo import ZoneInfo

    from lock_pipeline.access import store as access_store
    from lock_pipeline.access.pins import PinVault
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.runtime import pin_key

    with _database() as (settings, engine), engine.begin() as conn:
        reservation_id, backup = _stay_and_backup(conn, args.code)
        stored = access_store.current_pin(conn, reservation_id) if reservation_id else None
        if stored is None and backup is None:
            print(f"no PIN for stay {args.code!r} (see admin.reservations for its access_state)", file=sys.stderr)
            return 1
        vault, now = PinVault(pin_key(settings)), clock_from_environment().now()
        lines = []
        if stored is not None:
            lines.append(f"{stored.reservation_code}: {vault.decrypt(stored.pin_ciphertext)}  ({stored.state})")
            access_store.record_reveal(conn, reservation_id, code_id=stored.code_id, backup_id=None,
                                       revealed_by=args.by, reason=args.reason, at=now)
        if backup is not None:
            zone = ZoneInfo(settings.timezone)
            lines.append(f"{args.code.upper()}: backup code {vault.decrypt(backup.code_ciphertext)}  (an offline code: "
                         f"works even when the lock is offline, {backup.effective_from.astimezone(zone):%d/%m %H:%M} to "
                         f"{backup.invalid_at.astimezone(zone):%d/%m %H:%M}; must be used first within 24 h of its start)")
            access_store.record_reveal(conn, reservation_id, code_id=None, backup_id=backup.backup_id,
                                       revealed_by=args.by, reason=args.reason, at=now)
    print("\n".join(lines) + "\n(this reveal is recorded)")
    return 0


def _overrides(args: argparse.Namespace, decide, *, write: bool = True) -> int:
    """Run one listing or lock settings command; a refused change prints why and changes nothing."""
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.overrides import OverrideError

    try:
        with _database() as (_settings, engine), (engine.begin() if write else engine.connect()) as conn:
            print(decide(conn, clock_from_environment().now()))
    except OverrideError as error:
        problems = error.problems
        told = f" {problems[0]}" if len(problems) == 1 else "".join(f"\n  - {p}" for p in problems)
        print(f"{'not changed:' if write else 'error:'}{told}", file=sys.stderr)
        return 1
    return 0


def _listing_show(args: argparse.Namespace) -> int:
    from lock_pipeline.overrides import describe_listing

    return _overrides(args, lambda conn, _now: describe_listing(conn, args.code), write=False)


def _listing_set(args: argparse.Namespace) -> int:
    from lock_pipeline.overrides import set_listing
    from lock_pipeline.vocabulary import ChangeVia

    values = {"lead_minutes": args.lead_minutes, "grace_minutes": args.grace_minutes, "time_zone": args.time_zone,
              "check_in_time": args.check_in_time, "check_out_time": args.check_out_time}
    return _overrides(args, lambda conn, now: set_listing(conn, args.code, values, actor=args.by, now=now,
                                                          via=ChangeVia.CLI))


def _listing_reset(args: argparse.Namespace) -> int:
    from lock_pipeline.overrides import reset_listing
    from lock_pipeline.vocabulary import ChangeVia

    return _overrides(args, lambda conn, now: reset_listing(conn, args.code, args.setting, actor=args.by, now=now,
                                                            via=ChangeVia.CLI))


def _lock_show(args: argparse.Namespace) -> int:
    from lock_pipeline.overrides import describe_lock

    return _overrides(args, lambda conn, _now: describe_lock(conn, args.device_id), write=False)


def _lock_set(args: argparse.Namespace) -> int:
    from lock_pipeline.overrides import set_lock
    from lock_pipeline.vocabulary import ChangeVia

    return _overrides(args, lambda conn, now: set_lock(conn, args.device_id, args.pin_length, actor=args.by, now=now,
                                                       via=ChangeVia.CLI))


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
    from lock_pipeline.package_files import template_path
    from lock_pipeline.runtime import prepare, dagster_home

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
             "-w", str(template_path("workspace.yaml"))],
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
    from lock_pipeline.runtime import open_database, dagster_home
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.migrations import apply_migrations

    settings = load_settings()
    with ExitStack() as stack:
        applied = apply_migrations(engine_for(open_database(settings, stack)), settings)
    home = dagster_home(settings, for_services=True)
    print(f"schema: applied {applied}" if applied else "schema: up to date", "(views and published settings refreshed)")
    print(f"Dagster instance files: {home}/dagster.yaml, {home}/workspace.yaml "
          f"(code server at {settings.code_server_host}:{settings.code_server_port})")
    return 0


def _service_env(_args: argparse.Namespace) -> int:
    """What the webserver, the daemon, the code server and the webhook receiver must all share."""
    from lock_pipeline.runtime import pin_key, service_environment, webhook_token

    settings = load_settings()
    # Refuse a file the services could not start with (each would stop at start naming the same variable),
    # so the gap shows here, where the values are at hand, not in four services' logs.
    problems = []
    if settings.stays is None:
        problems.append("STAYS_BASE_URL, STAYS_CLIENT_ID and STAYS_CLIENT_SECRET are not set: the services call the "
                        "Stays API with them (Stays > App Center > API)")
    if settings.tuya is None:
        problems.append("TUYA_ACCESS_ID, TUYA_ACCESS_SECRET and TUYA_REGION (or TUYA_BASE_URL) are not set: the "
                        "services call the Tuya cloud with them")
    secret = {}
    for name, read in (("key", pin_key), ("token", webhook_token)):
        try:
            secret[name] = read(settings)
        except SettingsError as error:
            problems += error.problems
    if problems:
        raise SettingsError(problems)
    if settings.uses_embedded_database:
        print("# LOCK_PIPELINE_DATABASE_URL is not set: these lines point at the embedded Postgres of "
              f"{settings.home}, which must be running; for production set it to your server's URL")
    url = settings.database_url or _embedded_url(settings)
    print("# lock_pipeline services' environment (`lock-pipeline service-env`): keep this file private (chmod 600)")
    for key, value in service_environment(settings, url, secret["key"], os.environ,
                                          webhook_token=secret["token"]).items():
        print(f"{key}={value}")
    return 0


def _sync(_args: argparse.Namespace) -> int:
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.orchestration.commands import launch_sync

    settings = load_settings()
    try:
        run_id = launch_sync(settings.ui_host, settings.ui_port, settings, clock_from_environment().now(), trigger="cli")
    except Exception as error:  # noqa: BLE001 - say what failed and what to do
        print(f"could not launch the sync through the Dagster webserver at http://{settings.ui_host}:{settings.ui_port} "
              f"({error}): is it running (lock-pipeline up, or the dagster-webserver service)?", file=sys.stderr)
        return 1
    print(f"sync launched: run {run_id} (Dagster UI, Runs)")
    return 0


def _status(_args: argparse.Namespace) -> int:
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.orchestration.commands import deployment_health
    from lock_pipeline.status import build_status
    from sqlalchemy.exc import DBAPIError

    from lock_pipeline.storage import admin_views
    from lock_pipeline.storage.database import redacted
    from lock_pipeline.storage.migrations import SchemaError

    settings = load_settings()
    sync, attention, database_problem = None, [], None
    try:  # a health check reports a database that is down or behind, with the rest, instead of a traceback
        with _database() as (settings, engine), engine.connect() as conn:
            sync = admin_views.reconciliation_status(conn)
            attention = admin_views.attention(conn)
    except DBAPIError as error:
        where = f" at {redacted(settings.database_url)}" if settings.database_url else ""
        said = str(getattr(error, "orig", None) or error).strip().splitlines()
        database_problem = (f"the pipeline database{where} does not answer ({said[0] if said else type(error).__name__}): "
                            "start it, or fix LOCK_PIPELINE_DATABASE_URL")
    except SchemaError as error:
        database_problem = str(error)
    health = deployment_health(settings.ui_host, settings.ui_port)
    report = build_status(sync, attention, health, clock_from_environment().now(), settings.timezone,
                          database_problem=database_problem)
    print(report.text())
    return report.exit_code


def _webhooks(args: argparse.Namespace) -> int:
    from lock_pipeline.runtime import webhook_token
    from lock_pipeline.stays.receiver import serve, webhook_url

    settings = load_settings()
    token = webhook_token(settings)
    if args.print_url:
        base = settings.webhook_public_url or f"http://{args.host}:{args.port}"
        print(webhook_url(base, token))
        if not settings.webhook_public_url:
            print("# LOCK_PIPELINE_WEBHOOK_PUBLIC_URL is not set: this is the receiver's own address. Stays must reach "
                  "it over HTTPS through your reverse proxy: set LOCK_PIPELINE_WEBHOOK_PUBLIC_URL to that proxy's "
                  "base URL and print it again", file=sys.stderr)
        return 0
    client_id = settings.stays.client_id if settings.stays else None
    if not client_id:
        raise SettingsError(["STAYS_CLIENT_ID is missing: webhooks must carry the account's API login in "
                             "x-stays-client-id (start with `lock-pipeline up` for the sandbox)"])
    from lock_pipeline.clock import clock_from_environment

    with _database() as (_settings, engine):
        print(f"Stays webhook receiver on http://{args.host}:{args.port}/stays/webhooks/<token> "
              "(lock-pipeline webhooks --print-url shows the URL to register)", flush=True)
        serve(engine, host=args.host, port=args.port, token=token, client_id=client_id,
              now=clock_from_environment().now)
    return 0


def _sandbox_call(method: str, path: str, body: dict | None = None) -> dict:
    """A call to the running Stays sandbox's admin endpoints (found through the data directory)."""
    import httpx

    from lock_pipeline.runtime import running_sandbox

    sandbox = running_sandbox(load_settings(), "stays")
    answer = httpx.request(method, sandbox["admin_url"] + path, json=body, timeout=10,
                           auth=(sandbox["client_id"], sandbox["client_secret"]))
    if answer.status_code >= 400:
        raise SystemExit(f"the sandbox refused: HTTP {answer.status_code} {answer.text[:300]}")
    return answer.json()


def _sandbox_book(args: argparse.Namespace) -> int:
    from datetime import date, timedelta

    check_in = date.fromisoformat(args.check_in) if args.check_in else date.today()
    body = {"listing": args.listing, "checkInDate": check_in.isoformat(),
            "checkOutDate": (check_in + timedelta(days=args.nights)).isoformat(), "guestName": args.guest}
    if args.check_in_time:
        body["checkInTime"] = args.check_in_time
    booked = _sandbox_call("POST", "/reservations", body)
    print(f"booked {booked['id']} at {args.listing}: {booked['checkInDate']} {booked.get('checkInTime', '')} to "
          f"{booked['checkOutDate']}; watch admin.reservations (or the Dagster UI, Runs)")
    return 0


def _sandbox_cancel(args: argparse.Namespace) -> int:
    cancelled = _sandbox_call("POST", f"/reservations/{args.code}/cancel")
    print(f"cancelled {cancelled['id']}")
    return 0


def _sandbox_move(args: argparse.Namespace) -> int:
    body = {k: v for k, v in (("checkInDate", args.check_in), ("checkOutDate", args.check_out)) if v}
    moved = _sandbox_call("PATCH", f"/reservations/{args.code}", body)
    print(f"moved {moved['id']}: {moved['checkInDate']} to {moved['checkOutDate']}")
    return 0


def _stay_and_backup(conn, code: str):
    """The stay's id (None: no such code) and its current backup code (None: none)."""
    from lock_pipeline.access import backup_store
    from lock_pipeline.stays.store import find_stay_by_code

    reservation_id = find_stay_by_code(conn, code)
    return reservation_id, backup_store.current_backup(conn, reservation_id) if reservation_id else None


def _backup_clear(args: argparse.Namespace) -> int:
    from lock_pipeline.access import backup_store
    from lock_pipeline.access.pins import PinVault
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.runtime import pin_key, tuya_client

    with _database() as (settings, engine):
        with engine.connect() as conn:
            _reservation_id, backup = _stay_and_backup(conn, args.code)
        if backup is None:
            print(f"no backup code for stay {args.code!r} (admin.reservations shows backup_code_masked)", file=sys.stderr)
            return 1
        with tuya_client(settings) as tuya:
            digits = tuya.clear_offline_password(backup.device_id, backup.tuya_offline_id, backup.name)
        with engine.begin() as conn:
            backup_store.record_clear_requested(conn, backup.backup_id, clear_ciphertext=PinVault(pin_key(settings)).encrypt(digits),
                                                by=args.by, now=clock_from_environment().now())
    print(f"{args.code.upper()}: type {digits} at lock {backup.device_id} to clear its backup code, then run "
          f"`lock-pipeline backup-code cleared {args.code.upper()}` (this request is recorded)")
    return 0


def _backup_cleared(args: argparse.Namespace) -> int:
    from lock_pipeline.access import backup_store
    from lock_pipeline.clock import clock_from_environment

    with _database() as (_settings, engine), engine.begin() as conn:
        _reservation_id, backup = _stay_and_backup(conn, args.code)
        if backup is None:
            print(f"no backup code for stay {args.code!r}", file=sys.stderr)
            return 1
        backup_store.record_cleared(conn, backup.backup_id, by=args.by, now=clock_from_environment().now())
    print(f"{args.code.upper()}: its backup code is recorded as cleared at the lock")
    return 0


def _sandbox_show(args: argparse.Namespace) -> int:
    """GET /booking/reservations/{code} on the running sandbox, as the operator would look in Stays."""
    from lock_pipeline.stays.client import StaysClient

    from lock_pipeline.runtime import running_sandbox

    found = running_sandbox(load_settings(), "stays")
    with StaysClient(found["base_url"], found["client_id"], found["client_secret"], timeout=10) as client:
        reservation = client.get_reservation(args.code)
        names = {f["_idfield"]: f["internalName"] for f in client.list_custom_fields("reservation")}
    print(f"{reservation.get('id')} ({reservation.get('type')}): {reservation.get('checkInDate')} "
          f"{reservation.get('checkInTime', '')} to {reservation.get('checkOutDate')} {reservation.get('checkOutTime', '')}")
    for value in reservation.get("appCustomFields") or []:
        print(f"  {names.get(value.get('_idfield'), value.get('_idfield'))} = {value.get('val')!r}")
    if not reservation.get("appCustomFields"):
        print("  (no custom field written)")
    return 0


def _sandbox_notifications(args: argparse.Namespace) -> int:
    from lock_pipeline.sandbox.notifications import NotificationReceiver, print_event
    from lock_pipeline.settings import notify_secret_problem

    problem = notify_secret_problem(args.secret) if args.secret else "is missing"
    if problem:
        raise SettingsError([f"--secret (or LOCK_PIPELINE_NOTIFY_SECRET) {problem}"])
    receiver = NotificationReceiver(args.secret, host=args.host, port=args.port, on_event=print_event).start()
    print(f"receiving signed code events on {receiver.url} (set LOCK_PIPELINE_NOTIFY_URL to it); Ctrl+C stops",
          flush=True)
    try:
        threading.Event().wait()
    finally:
        receiver.stop()
    return 0


def _settings(args: argparse.Namespace) -> int:
    from lock_pipeline.settings import setting_specs

    settings = load_settings()
    shown = settings.environment(include_secrets=True)
    if args.markdown:
        print("| setting | default | unit | meaning |")
        print("| --- | --- | --- | --- |")
        for spec in setting_specs():
            scope = "lock" if spec.override and spec.override.startswith("lock-pipeline lock ") else "listing"
            print(f"| `{spec.env}` | {spec.default_text} | {spec.unit} | {spec.help}"
                  f"{f' (per {scope}: `{spec.override}`)' if spec.override else ''} |")
        return 0
    for spec in setting_specs():
        value = shown.get(spec.env)
        value = "(set, hidden)" if value and spec.secret else (value or f"(default: {spec.default_text})")
        print(f"{spec.env}={value}\n    {spec.help}")
    return 0


def _db_url(_args: argparse.Namespace) -> int:
    settings = load_settings()
    print(settings.database_url or _embedded_url(settings))
    return 0


def _embedded_url(settings) -> str:
    """The embedded server's URL, starting it if needed and leaving it running."""
    from lock_pipeline.storage.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.home)
    url = server.start()
    server.detach()  # leave a running server running (and do not start one that stops at once)
    return url.replace("postgresql+psycopg2://", "postgresql://")


def _new_pin_key(_args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def _new_notify_secret(_args: argparse.Namespace) -> int:
    import base64
    import secrets

    print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
