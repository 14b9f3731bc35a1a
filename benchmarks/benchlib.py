"""Shared helpers for the benchmark scripts (not a test module, not part of the package).

- ``embedded_server()``: a throw-away embedded Postgres in a temp dir (deleted on stop);
- ``fresh_database()``: a new, fully migrated database on that server;
- ``RssSampler``: peak resident memory of a set of processes, sampled in a thread;
- ``process_tree_memory()``: RSS and PSS sums of processes and their descendants;
- small formatting helpers so every script prints figures the same way.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

# The benchmarks' "now": Monday 23 Nov 2026, 15:00 in São Paulo (as the tests use).
BENCH_NOW = datetime(2026, 11, 23, 18, 0, tzinfo=timezone.utc)
MiB = 2**20


# ------------------------------------------------------------------ Postgres


@dataclass
class Server:
    url: str          # URL of the pipeline database on the embedded server
    home: Path
    handle: object    # lock_pipeline.storage.embedded.EmbeddedPostgres

    @property
    def postmaster_pid(self) -> int | None:
        server = getattr(self.handle, "_server", None)
        try:
            return server.get_pid() if server is not None else None
        except Exception:  # noqa: BLE001 - only used for memory figures
            return None


@contextmanager
def embedded_server(prefix: str = "lp-bench-") -> Iterator[Server]:
    """A fresh embedded Postgres in a temp dir, deleted when the block ends."""
    from lock_pipeline.storage.embedded import EmbeddedPostgres

    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(home, 0o755)  # as root, the server runs as another system user
    handle = EmbeddedPostgres(home, delete_on_stop=True)
    url = handle.start()
    try:
        yield Server(url=url, home=home, handle=handle)
    finally:
        from lock_pipeline.storage.database import engine_for

        engine_for.cache_clear()
        handle.stop()
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def fresh_database(server: Server, name: str, *, migrate: bool = True) -> str:
    """Drop-and-create ``name`` on the server; apply the schema files; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from lock_pipeline.storage.database import sqlalchemy_url
    from lock_pipeline.storage.migrations import apply_migrations

    admin = create_engine(sqlalchemy_url(server.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server.url).set(database=name).render_as_string(hide_password=False)
    if migrate:
        engine = create_engine(sqlalchemy_url(url))
        apply_migrations(engine)
        engine.dispose()
    return url


def raw_connection(url: str):
    """A plain psycopg2 connection (for COPY and EXPLAIN)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg2.connect(
        dbname=parsed.database, user=parsed.username, password=parsed.password,
        host=parsed.query.get("host") or parsed.host, port=parsed.port,
    )


def copy_rows(cur, table: str, columns: list[str], rows) -> int:
    """COPY rows (tuples of Python values; None is NULL) into ``table`` in text format."""
    import io

    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v))
                               for v in row))
        buffer.write("\n")
        count += 1
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
    return count


def stable_hash(*parts: object) -> str:
    import hashlib

    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


# ------------------------------------------------------------------ memory


def _tree(pids: Iterable[int]) -> list[psutil.Process]:
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
        except (psutil.Error, ValueError):
            continue
        for proc in [root, *root.children(recursive=True)]:
            seen.setdefault(proc.pid, proc)
    return list(seen.values())


def tree_rss(pids: Iterable[int]) -> int:
    total = 0
    for proc in _tree(pids):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def process_tree_memory(pids: Iterable[int]) -> dict[str, object]:
    """RSS sum (double-counts shared pages), PSS sum (shared pages split fairly) and the process list."""
    rss = pss = 0
    rows = []
    for proc in _tree(pids):
        try:
            info = proc.memory_full_info()
            name = " ".join(proc.cmdline()[:6])[:110] or proc.name()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        rows.append((proc.pid, info.rss, getattr(info, "pss", info.rss), name))
    return {"rss": rss, "pss": pss, "processes": rows}


class RssSampler:
    """Samples the summed RSS of ``pids()`` (and their descendants) every ``interval`` s; keeps the peak."""

    def __init__(self, pids: Callable[[], Iterable[int]] | None = None, interval: float = 0.05) -> None:
        self._pids = pids or (lambda: [os.getpid()])
        self.interval = interval
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "RssSampler":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()

    def _take(self) -> None:
        value = tree_rss(self._pids())
        self.samples.append((time.monotonic(), value))
        self.peak = max(self.peak, value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.interval)


def self_peak_rss() -> int:
    """Peak RSS of this process since it started (getrusage), bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------ printing


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def spread(values: Iterable[float], unit: str = "s", digits: int = 2) -> str:
    values = list(values)
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} {unit} (1 run)"
    return (f"median {median(values):.{digits}f} {unit} over {len(values)} runs "
            f"(min {min(values):.{digits}f}, max {max(values):.{digits}f})")


def mib(value: float) -> str:
    return f"{value / MiB:.0f} MiB"


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


class ForeignLoad:
    """CPU used by processes other than this one and its descendants while a benchmark ran (the
    machine may be shared: figures taken while something else was busy are not comparable)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy0 = self._busy_all()
        self.own0 = self._own()

    @staticmethod
    def _busy_all() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)

    @staticmethod
    def _own() -> float:
        total = 0.0
        for proc in _tree([os.getpid()]):
            try:
                c = proc.cpu_times()
                total += c.user + c.system + c.children_user + c.children_system
            except psutil.Error:
                pass
        return total

    def line(self, own: bool = True) -> str:
        wall = time.monotonic() - self.started
        cores = os.cpu_count() or 1
        busy = self._busy_all() - self.busy0
        load1, load5, _ = os.getloadavg()
        mine = ""
        if own:
            used = self._own() - self.own0
            mine = (f", this benchmark's Python processes {used / (wall * cores):.0%} (the rest is its Postgres "
                    f"and anything else running on the machine)")
        return (f"machine: {busy / (wall * cores):.0%} of {cores} cores busy over {wall:.0f} s{mine}; "
                f"load average now {load1:.2f} / {load5:.2f}")


def machine_line() -> str:
    import platform

    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
