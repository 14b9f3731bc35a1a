"""What ``lock-pipeline status`` reports: the last sync, the schedule, the daemon, and what needs a person.

It doubles as a health check: the report lists problems, and the command exits non-zero when
there is any, so a supervisor or a monitoring probe can run it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from lock_pipeline.orchestration.commands import DeploymentHealth

HEARTBEAT_TOO_OLD_SECONDS = 120


@dataclass
class StatusReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def text(self) -> str:
        verdict = (["all well: nothing needs a person"] if not self.problems
                   else [f"{len(self.problems)} thing(s) need a person:", *(f"  - {p}" for p in self.problems)])
        return "\n".join([*self.lines, "", *verdict])


def build_status(sync: dict | None, attention: list[dict], health: DeploymentHealth, now: datetime,
                 zone: str, *, database_problem: str | None = None) -> StatusReport:
    """``database_problem``: the pipeline database could not be read (down, or its schema behind); the
    sync and admin.attention are then unknown, and that is the problem reported."""
    tz = ZoneInfo(zone)
    report = StatusReport([f"lock_pipeline status at {now.astimezone(tz):%Y-%m-%d %H:%M} ({zone})"])

    def local(instant: datetime | None) -> str:
        return f"{instant.astimezone(tz):%Y-%m-%d %H:%M}" if instant else "never"

    if database_problem:
        report.lines.append("  database: NOT readable (last sync and admin.attention unknown)")
        report.problems.append(database_problem)
    elif sync is None:
        report.lines.append("  last sync: none yet")
        report.problems.append("no Stays sync has run yet: check the daemon and the schedule, or run `lock-pipeline sync`")
    else:
        took = "" if sync["duration_ms"] is None else f", {sync['duration_ms'] / 1000:.1f} s"
        report.lines.append(
            f"  last sync: #{sync['last_sync_id']} {sync['status']} at {local(sync['last_started_at'])}{took}; "
            f"fetched {sync['fetched']}, {sync['created']} new, {sync['updated']} changed, {sync['cancelled']} cancelled, "
            f"{sync['missing']} missing, {sync['quarantined']} quarantined")
        report.lines.append(f"  last successful sync: {local(sync['last_success_at'])}; "
                            f"next scheduled: {local(sync['next_scheduled_run'])}")
    if not health.reachable:
        report.lines.append("  Dagster: not reachable")
        report.problems.append(health.problem)
    else:
        report.lines.extend(_deployment_lines(health, now, local, report.problems))
    if database_problem:
        return report
    report.lines.append(f"  admin.attention: {len(attention)} item(s)")
    for item in attention:
        who = " ".join(x for x in (item.get("reservation_code"), item.get("listing_code")) if x)
        due = f" (due {local(item['due_at'])})" if item.get("due_at") else ""
        report.problems.append(f"{item['issue']}{' ' + who if who else ''}{due}: {item['what_to_do']}")
    return report


def _deployment_lines(health: DeploymentHealth, now: datetime, local, problems: list[str]) -> list[str]:
    lines = []
    if health.problem:
        problems.append(health.problem)
    stale = [name for name, (healthy, beat) in health.daemons.items()
             if not healthy or beat is None or (now - beat).total_seconds() > HEARTBEAT_TOO_OLD_SECONDS]
    beats = [beat for _, beat in health.daemons.values() if beat is not None]
    last = f"last heartbeat {int((now - max(beats)).total_seconds())} s ago" if beats else "no heartbeat"
    lines.append(f"  daemon: {'healthy' if health.daemons and not stale else 'NOT healthy'} "
                 f"({len(health.daemons)} required daemons; {last})")
    if not health.daemons or stale:
        problems.append(f"the Dagster daemon is not running or not healthy ({', '.join(stale) or 'no heartbeat'}): "
                        "start it (lock-pipeline up, or the dagster-daemon service)")
    for schedule in health.schedules:
        lines.append(f"  schedule {schedule.name}: {'on' if schedule.running else 'OFF'}"
                     f"{f', next tick {local(schedule.next_tick)}' if schedule.running and schedule.next_tick else ''}")
        if not schedule.running:
            problems.append(f"schedule {schedule.name} is off: turn it on in the Dagster UI (Automation)")
    for sensor in health.sensors:
        lines.append(f"  sensor {sensor.name}: {'on' if sensor.running else 'OFF'}")
        if not sensor.running:
            problems.append(f"sensor {sensor.name} is off: turn it on in the Dagster UI (Automation)")
    return lines
