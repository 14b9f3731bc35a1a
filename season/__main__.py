"""``python -m season``: run seeded seasons and print the report (exit status 1 when a target is missed).

It starts its own embedded Postgres for each season unless ``--database-url`` names an empty database.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import season
from season.config import SeasonConfig
from season.report import format_report
from season.run import simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m season", description=season.__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--listings", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="seasons to run, with seeds seed, seed+1, ...")
    parser.add_argument("--step-minutes", type=int, default=30)
    parser.add_argument("--postgres-fault", choices=["restart", "terminate"], default="restart")
    parser.add_argument("--database-url", default=None, help="an empty database (default: a fresh embedded server)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.CRITICAL)
    results = []
    for offset in range(args.runs):
        config = SeasonConfig(days=args.days, listings=args.listings, seed=args.seed + offset,
                              step_minutes=args.step_minutes, postgres_fault=args.postgres_fault, progress=not args.quiet)
        with tempfile.TemporaryDirectory(prefix="lp-season-") as tmp, _database(args.database_url, Path(tmp)) as url:
            print(f"season seed {config.seed}: {config.days} days, {config.listings} listings ...", file=sys.stderr, flush=True)
            results.append(simulate(config, url, Path(tmp) / "work"))
    print(format_report(results))
    return 0 if all(not r.problems() for r in results) else 1


@contextmanager
def _database(url: str | None, home: Path) -> Iterator[str]:
    from lock_pipeline.storage.database import engine_for
    from lock_pipeline.storage.embedded import EmbeddedPostgres
    from lock_pipeline.storage.migrations import apply_migrations

    if url:
        apply_migrations(engine_for(url))
        yield url
        return
    server = EmbeddedPostgres(home, delete_on_stop=True)
    url = server.start()
    try:
        apply_migrations(engine_for(url))
        yield url
    finally:
        engine_for(url).dispose()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
