"""What the operator's commands ask of a running Dagster deployment, through its public GraphQL API."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lock_pipeline.orchestration.dagster_internals import partition_range_tags
from lock_pipeline.orchestration.partitions import months_covering
from lock_pipeline.settings import Settings
from lock_pipeline.vocabulary import RunTag


def wait_for_webserver(host: str, port: int, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/server_info", timeout=2):
                return True
        except OSError:
            time.sleep(2)
    return False


def launch_sync(host: str, port: int, settings: Settings, now: datetime, *, trigger: str,
                attempts: int = 1, pause_seconds: float = 3.0) -> str:
    """Launch the sync job over the whole sync window; returns the run id (it shows in the run history)."""
    from dagster_graphql import DagsterGraphQLClient

    months = months_covering(now, settings.timezone, settings.sync_days_back, settings.sync_days_ahead)
    tags = {**partition_range_tags(months.start, months.end), str(RunTag.TRIGGER): trigger}
    for attempt in range(attempts):
        try:
            return DagsterGraphQLClient(host, port_number=port).submit_job_execution("full_sync_job", tags=tags)
        except Exception:  # noqa: BLE001 - the code location may still be loading; the caller says how often to try
            if attempt + 1 == attempts:
                raise
            time.sleep(pause_seconds)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Instigator:
    name: str
    running: bool
    next_tick: datetime | None = None


@dataclass(frozen=True)
class DeploymentHealth:
    """What the Dagster webserver says of the deployment (its public GraphQL API)."""

    reachable: bool
    problem: str = ""
    daemons: dict[str, tuple[bool, datetime | None]] = field(default_factory=dict)  # type -> (healthy, last heartbeat)
    schedules: list[Instigator] = field(default_factory=list)
    sensors: list[Instigator] = field(default_factory=list)


_HEALTH_QUERY = """
query LockPipelineStatus($repo: RepositorySelector!) {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } }
  schedulesOrError(repositorySelector: $repo) {
    __typename
    ... on Schedules { results { name scheduleState { status } futureTicks(limit: 1) { results { timestamp } } } }
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
  }
  sensorsOrError(repositorySelector: $repo) {
    __typename
    ... on Sensors { results { name sensorState { status } } }
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
  }
}
"""


def deployment_health(host: str, port: int, *, location: str = "lock_pipeline", timeout: float = 10.0) -> DeploymentHealth:
    """Daemon heartbeats, and whether the schedules and sensors are on, as the webserver sees them."""
    import httpx

    variables = {"repo": {"repositoryLocationName": location, "repositoryName": "__repository__"}}
    try:
        answer = httpx.post(f"http://{host}:{port}/graphql", json={"query": _HEALTH_QUERY, "variables": variables},
                            timeout=timeout)
        answer.raise_for_status()
        data = answer.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
        return DeploymentHealth(False, f"the Dagster webserver at http://{host}:{port} does not answer ({error}): "
                                       "start it (lock-pipeline up, or the dagster-webserver service)")
    daemons = {d["daemonType"]: (bool(d["healthy"]), _instant(d["lastHeartbeatTime"]))
               for d in data["instance"]["daemonHealth"]["allDaemonStatuses"] if d["required"]}
    schedules, sensors, problems = [], [], []
    for key, kind in (("schedulesOrError", "schedule"), ("sensorsOrError", "sensor")):
        found = data[key]
        if "results" not in found:
            problems.append(f"{kind}s unavailable: {found.get('message', found['__typename'])}")
            continue
        for item in found["results"]:
            state = item.get("scheduleState") or item.get("sensorState")
            ticks = (item.get("futureTicks") or {}).get("results") or []
            entry = Instigator(item["name"], state["status"] == "RUNNING", _instant(ticks[0]["timestamp"]) if ticks else None)
            (schedules if kind == "schedule" else sensors).append(entry)
    return DeploymentHealth(True, "; ".join(problems), daemons, schedules, sensors)


def _instant(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, tz=timezone.utc) if epoch is not None else None
