"""Benchmark: memory of the whole running default (`lock-pipeline up`), idle and during its first sync.

Not a test; it prints figures and never fails a build. From the repo root:

    .venv/bin/python benchmarks/bench_steady_state.py [--runs 3] [--idle 20]

Each run starts ``.venv/bin/lock-pipeline up --port <free port>`` with a fresh LOCK_PIPELINE_HOME
in a temp dir (so: embedded Postgres, sandbox Stays and Tuya, Dagster webserver + daemon + code
server) as a subprocess in its own session, and waits for the UI (GET /server_info). Memory is
the whole process tree: ``lock-pipeline up`` and every descendant (dagster dev, webserver,
daemon, code-location server, run workers), plus the embedded Postgres server and its backends
(pg_ctl daemonizes it, so it is not a descendant; it is found through its postmaster.pid).
Two sums are printed: RSS (what was asked; it counts shared pages, notably Postgres' shared
buffers and Python's shared libraries, once per process) and PSS (shared pages split between the
processes that map them: the fair total).

Phases: at UI ready; during the first sync (``up`` launches one as soon as the UI answers:
sampled every 0.5 s from its launch until its run ends, peak); then the PIN runs the sensor
launches for the seed's arrivals; then ``--idle`` seconds with no run process alive (sampled
every second, median). Finally SIGINT to the process group, and up to 60 s for everything to
exit (the time is printed, and any process left behind).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import psutil  # noqa: E402

import benchlib  # noqa: E402
from benchlib import MiB, median, spread  # noqa: E402

UP = benchlib.REPO / ".venv" / "bin" / "lock-pipeline"
_DROP_ENV = re.compile(r"^(STAYS_|TUYA_|LOCK_PIPELINE_|DAGSTER_HOME$|REQUESTS_CA_BUNDLE$|SSL_CERT_FILE$)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postmaster_pid(home: Path) -> int | None:
    try:
        pid = int((home / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None  # negative while initdb runs a single-user backend


def classify(cmdline: str) -> str:
    if cmdline.startswith("tail -F") or "watch_orphans" in cmdline:
        return "compute-log tail/watcher"
    if "execute_run" in cmdline or "execute_step" in cmdline or "multiprocessing.spawn" in cmdline:
        return "run worker"  # the code server starts each run with multiprocessing (spawn)
    if "multiprocessing.resource_tracker" in cmdline:
        return "mp resource tracker"
    if "dagster_webserver" in cmdline or "dagster-webserver" in cmdline:
        return "webserver"
    if "dagster._daemon" in cmdline or "dagster-daemon" in cmdline:
        return "daemon"
    if "code-server start" in cmdline:
        return "code-server proxy"
    if "api grpc" in cmdline:
        return "code server"
    if "dagster dev" in cmdline:
        return "dagster dev"
    if "lock-pipeline" in cmdline:
        return "lock-pipeline up (+ sandboxes)"
    return "other: " + cmdline[:60]


def snapshot(roots: list[int], full: bool) -> dict:
    rss = pss = 0
    by_role: dict[str, list[int]] = {}
    run_workers = 0
    for proc in benchlib._tree(roots):
        try:
            cmd = " ".join(proc.cmdline())
            if full:
                info = proc.memory_full_info()
                proc_pss = getattr(info, "pss", info.rss)
            else:
                info = proc.memory_info()
                proc_pss = 0
        except psutil.Error:
            continue
        role = classify(cmd) if not proc.name().startswith("postgres") else "postgres"
        rss += info.rss
        pss += proc_pss
        by_role.setdefault(role, [0, 0, 0])
        by_role[role][0] += info.rss
        by_role[role][1] += proc_pss
        by_role[role][2] += 1
        run_workers += role == "run worker"
    return {"rss": rss, "pss": pss, "roles": by_role, "run_workers": run_workers}


def graphql(port: int):
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=port)


def runs_in_progress(port: int) -> list[tuple[str, str, str]]:
    """(run id, job, status) of every run not finished yet, from the webserver's GraphQL."""
    query = """{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
                 ... on Runs { results { runId jobName status } } } }"""
    try:
        data = graphql(port)._execute(query)
        return [(r["runId"], r["jobName"], r["status"]) for r in data["runsOrError"]["results"]]
    except Exception:  # noqa: BLE001 - the location may still be loading
        return []


def finished_runs(port: int) -> list[tuple[str, str, str]]:
    query = """{ runsOrError(filter: {statuses: [SUCCESS, FAILURE, CANCELED]}) {
                 ... on Runs { results { runId jobName status } } } }"""
    try:
        data = graphql(port)._execute(query)
        return [(r["runId"], r["jobName"], r["status"]) for r in data["runsOrError"]["results"]]
    except Exception:  # noqa: BLE001
        return []


def one_run(number: int, idle_seconds: float, log_dir: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix="lp-bench-steady-"))
    os.chmod(home, 0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not _DROP_ENV.match(k)}
    env["LOCK_PIPELINE_HOME"] = str(home)
    log_path = log_dir / f"steady_state_run{number}.log"
    figures: dict = {"port": port, "log": str(log_path)}
    started = time.monotonic()
    with open(log_path, "w") as log:
        # SIGINT back to its default in the child: a shell without job control starts background
        # commands with SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
        up = subprocess.Popen([str(UP), "up", "--port", str(port)], env=env, cwd=benchlib.REPO, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    known: set[int] = set()

    def roots() -> list[int]:
        pids = [up.pid]
        pg = postmaster_pid(home)
        if pg:
            pids.append(pg)
        return pids

    def remember() -> None:
        for proc in benchlib._tree(roots()):
            known.add(proc.pid)

    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            remember()
            if up.poll() is not None:
                raise RuntimeError(f"lock-pipeline up exited with {up.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"the UI did not answer within 240 s; see {log_path}")
        figures["ui_ready_s"] = time.monotonic() - started
        remember()
        figures["at_ui_ready"] = snapshot(roots(), full=True)
        figures["process_list"] = [(p.pid, " ".join(p.cmdline())[:150]) for p in benchlib._tree(roots())
                                   if not p.name().startswith("postgres")]

        # the first sync: from its launch (up submits it once /server_info answers) to its end
        sync_peak = {"rss": 0, "pss": 0}
        sync_samples = []
        sync_started = None
        sync_deadline = time.monotonic() + 300
        sync_id = None
        while time.monotonic() < sync_deadline:
            remember()
            snap = snapshot(roots(), full=True)
            active = runs_in_progress(port)
            syncs = [r for r in active if r[1] == "sync_job"]
            if syncs and sync_started is None:
                sync_started, sync_id = time.monotonic(), syncs[0][0]
            if sync_started is not None:
                sync_samples.append(snap)
                sync_peak["rss"] = max(sync_peak["rss"], snap["rss"])
                sync_peak["pss"] = max(sync_peak["pss"], snap["pss"])
                if not syncs:
                    break
            time.sleep(0.5)
        figures["sync_seconds"] = (time.monotonic() - sync_started) if sync_started else None
        figures["sync_status"] = next((r[2] for r in finished_runs(port) if r[0] == sync_id), "not seen")
        figures["during_sync_peak"] = sync_peak
        figures["during_sync_roles"] = max(sync_samples, key=lambda s: s["rss"])["roles"] if sync_samples else {}

        # PIN runs the sensor launches after the sync (every 30 s), then quiet
        quiet_since = None
        busy_peak = 0
        settle_deadline = time.monotonic() + 150
        while time.monotonic() < settle_deadline:
            remember()
            snap = snapshot(roots(), full=False)
            busy_peak = max(busy_peak, snap["rss"])
            busy = snap["run_workers"] > 0 or runs_in_progress(port)
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 35:  # a full sensor interval with nothing to launch
                break
            time.sleep(1)
        figures["pin_runs_peak_rss"] = busy_peak
        done = finished_runs(port)
        figures["runs_finished"] = {job: sum(1 for r in done if r[1] == job) for job in {r[1] for r in done}}
        figures["runs_failed"] = sum(1 for r in done if r[2] != "SUCCESS")

        idle = []
        idle_end = time.monotonic() + idle_seconds
        while time.monotonic() < idle_end:
            remember()
            idle.append(snapshot(roots(), full=True))
            time.sleep(1)
        figures["idle_rss"] = median(s["rss"] for s in idle)
        figures["idle_pss"] = median(s["pss"] for s in idle)
        figures["idle_max_rss"] = max(s["rss"] for s in idle)
        figures["idle_roles"] = idle[len(idle) // 2]["roles"]
        figures["idle_processes"] = sum(v[2] for v in idle[len(idle) // 2]["roles"].values())
    finally:
        remember()
        stop_at = time.monotonic()
        try:
            os.killpg(up.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        watched = {}
        for pid in known:
            try:
                proc = psutil.Process(pid)
                watched[pid] = (proc, "postgres" if proc.name().startswith("postgres") else
                                classify(" ".join(proc.cmdline())))
            except psutil.Error:
                pass
        gone_at: dict[str, float] = {}
        while time.monotonic() - stop_at < 60:
            alive_roles = set()
            for pid, (proc, role) in watched.items():
                try:
                    if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                        alive_roles.add(role)
                except psutil.Error:
                    pass
            for role in {r for _, r in watched.values()} - alive_roles:
                gone_at.setdefault(role, time.monotonic() - stop_at)
            if up.poll() is not None and not alive_roles:
                break
            time.sleep(0.2)
        figures["gone_after"] = gone_at
        if up.poll() is not None:
            figures["exit_seconds"] = gone_at.get("lock-pipeline up (+ sandboxes)", time.monotonic() - stop_at)
            figures["exit_code"] = up.returncode
        else:
            figures["exit_seconds"] = None
            figures["exit_code"] = None
        time.sleep(1)
        leftovers = []
        for pid in sorted(known):
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append((pid, " ".join(proc.cmdline())[:100]))
            except psutil.Error:
                pass
        figures["leftovers"] = leftovers
        for pid, _ in leftovers:  # only processes this run started (recorded by pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not leftovers:
            import shutil

            shutil.rmtree(home, ignore_errors=True)
    return figures


def _roles(roles: dict) -> str:
    return ", ".join(f"{role} x{v[2]} {v[0] / MiB:.0f}/{v[1] / MiB:.0f}" for role, v in
                     sorted(roles.items(), key=lambda kv: -kv[1][0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle sampling")
    parser.add_argument("--scale", type=float, default=None, help="accepted for run_all; < 1 means one run, 10 s idle")
    args = parser.parse_args()
    if args.scale is not None and args.scale < 1:
        args.runs, args.idle = 1, 10.0
    load = benchlib.ForeignLoad()
    print(f"bench_steady_state: {args.runs} run(s) of `lock-pipeline up` (fresh LOCK_PIPELINE_HOME each), "
          f"{args.idle:g} s idle sampling; {benchlib.machine_line()}", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="lp-bench-steady-logs-"))
    results = []
    for number in range(1, args.runs + 1):
        try:
            f = one_run(number, args.idle, log_dir)
        except Exception as error:  # noqa: BLE001 - a benchmark reports, it does not fail the build
            print(f"run {number}: {error}", flush=True)
            continue
        results.append(f)
        print(f"run {number}: UI after {f['ui_ready_s']:.1f} s; at UI ready RSS {f['at_ui_ready']['rss'] / MiB:.0f} MiB "
              f"/ PSS {f['at_ui_ready']['pss'] / MiB:.0f} MiB; first sync {f['sync_seconds'] or 0:.1f} s "
              f"({f['sync_status']}), peak RSS {f['during_sync_peak']['rss'] / MiB:.0f} / PSS "
              f"{f['during_sync_peak']['pss'] / MiB:.0f} MiB; PIN runs peak RSS {f['pin_runs_peak_rss'] / MiB:.0f} MiB; "
              f"runs {f['runs_finished']} ({f['runs_failed']} not successful); idle RSS {f['idle_rss'] / MiB:.0f} / "
              f"PSS {f['idle_pss'] / MiB:.0f} MiB in {f['idle_processes']} processes; stop: exit after "
              f"{f['exit_seconds'] if f['exit_seconds'] is None else round(f['exit_seconds'], 1)} s "
              f"(code {f['exit_code']}), left behind {len(f['leftovers'])}", flush=True)
        if number == 1:
            for pid, cmd in f["process_list"]:
                print(f"  process at UI ready: {pid} {cmd}", flush=True)
        print(f"  during sync (RSS/PSS MiB by role): {_roles(f['during_sync_roles'])}", flush=True)
        print("  after SIGINT, last process of each role gone after: " +
              ", ".join(f"{role} {t:.1f} s" for role, t in sorted(f["gone_after"].items(), key=lambda kv: kv[1])),
              flush=True)
        print(f"  idle (RSS/PSS MiB by role): {_roles(f['idle_roles'])}", flush=True)
        for pid, cmd in f["leftovers"]:
            print(f"  left behind after SIGINT + 60 s: {pid} {cmd}", flush=True)
    if len(results) == args.runs:
        import shutil

        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        print(f"logs of `lock-pipeline up`: {log_dir}")
    if not results:
        return
    benchlib.banner("bench_steady_state summary")
    print(f"UI ready after: {spread([r['ui_ready_s'] for r in results], 's', 1)}")
    print(f"whole tree at UI ready: RSS {spread([r['at_ui_ready']['rss'] / MiB for r in results], 'MiB', 0)}; "
          f"PSS {spread([r['at_ui_ready']['pss'] / MiB for r in results], 'MiB', 0)}")
    print(f"whole tree during the first sync (peak): RSS "
          f"{spread([r['during_sync_peak']['rss'] / MiB for r in results], 'MiB', 0)}; PSS "
          f"{spread([r['during_sync_peak']['pss'] / MiB for r in results], 'MiB', 0)}; sync run "
          f"{spread([r['sync_seconds'] or 0 for r in results], 's', 1)}")
    print(f"whole tree during the PIN runs after it (peak RSS): "
          f"{spread([r['pin_runs_peak_rss'] / MiB for r in results], 'MiB', 0)}")
    print(f"whole tree idle (median over {args.idle:g} s): RSS {spread([r['idle_rss'] / MiB for r in results], 'MiB', 0)}; "
          f"PSS {spread([r['idle_pss'] / MiB for r in results], 'MiB', 0)}")
    exits = [r["exit_seconds"] for r in results if r["exit_seconds"] is not None]
    print(f"SIGINT to exit: {spread(exits, 's', 1) if exits else 'did not exit within 60 s'}; "
          f"exit codes {[r['exit_code'] for r in results]}; processes left behind {[len(r['leftovers']) for r in results]}")
    print(load.line(own=False))


if __name__ == "__main__":
    main()
