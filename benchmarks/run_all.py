"""Run every benchmark, one after the other, and print their figures.

    .venv/bin/python benchmarks/run_all.py            # full scale (about 25-30 min on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # small scale, a few minutes
    .venv/bin/python benchmarks/run_all.py --only sync sensor

Benchmarks are not tests: they print figures, ratios and MET/MISSED against their targets, and
this command always exits 0 (a benchmark that crashes is reported in the closing table).
Each script runs in its own process, so one's memory peak does not leak into the next.
See benchmarks/RESULTS.md for the last recorded figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# name: (script, full-scale arguments, quick arguments)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "matching": ("bench_matching.py", [], ["--listings", "500", "--runs", "3"]),
    "sync": ("bench_sync.py", [], ["--scale", "0.05", "--runs", "1"]),
    "sensor": ("bench_sensor.py", [], ["--scale", "0.1", "--runs", "3"]),
    "burst": ("bench_burst.py", [], ["--locks", "60"]),
    "steady_state": ("bench_steady_state.py", [], ["--scale", "0.5"]),
    "webhook_latency": ("bench_webhook_latency.py", [], ["--stays", "5", "--every", "3"]),
    "sync_cost": ("bench_sync_cost.py", [], ["--scale", "0.05"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scale: checks the scripts, not the targets")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--skip", nargs="+", choices=sorted(BENCHMARKS), default=[], help="leave these out")
    args = parser.parse_args()
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    results = []
    for name in names:
        script, full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"\n######## {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run(command, cwd=REPO).returncode
        except KeyboardInterrupt:
            print(f"{name}: interrupted", flush=True)
            code = 130
            results.append((name, time.monotonic() - started, code))
            break
        results.append((name, time.monotonic() - started, code))
    print("\n######## run_all: done")
    print(f"{'benchmark':<14} {'seconds':>8}  result")
    for name, seconds, code in results:
        print(f"{name:<14} {seconds:>8.0f}  {'ran' if code == 0 else f'crashed (exit {code}): see its output above'}")
    print("figures and MET/MISSED lines are in each benchmark's summary above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
