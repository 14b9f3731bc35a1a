"""Failed Dagster runs (pipeline.run_failures), recorded so admin.attention can list them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text


def record_run_failure(conn: Connection, *, run_id: str, job_name: str, stay_codes: Sequence[str], message: str,
                       failed_at: datetime) -> None:
    """Once per run: the run-failure sensor may see a failure again after a restart."""
    conn.execute(text("""
        INSERT INTO pipeline.run_failures (run_id, job_name, stay_codes, message, failed_at)
        VALUES (:run_id, :job, :stays, :message, :at) ON CONFLICT (run_id) DO NOTHING
    """), {"run_id": run_id, "job": job_name, "stays": list(stay_codes), "message": message[:1000], "at": failed_at})
