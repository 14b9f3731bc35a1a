"""Named points inside the pipeline's work, where a test rig may step in.

The season simulator and the tests kill a run's process (or restart Postgres under it) at these
points, to prove that exactly-once and "nothing lost" hold wherever a run dies. In production
nothing observes them and :func:`reached` returns at once. The points are explicit calls in the
product code, so a refactor that moves them shows in the diff, instead of a rig patching
private methods it has to guess the names of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

SYNC_BEFORE_COMMIT = "sync:mid_write"            # a sync's rows are written, its transaction not committed
GENERATE_START = "generate:start"                # before the code row exists
GENERATE_BEFORE_TUYA = "generate:before_tuya"    # the code row is committed, Tuya not called yet
GENERATE_AFTER_TUYA = "generate:after_tuya"      # the PIN is on the lock, the database does not know yet
REVOKE_AFTER_DELETE = "revoke:after_delete"      # the PIN is deleted, the database does not know yet
CONFIRM_START = "confirm:start"

POINTS = (SYNC_BEFORE_COMMIT, GENERATE_START, GENERATE_BEFORE_TUYA, GENERATE_AFTER_TUYA, REVOKE_AFTER_DELETE,
          CONFIRM_START)

Observer = Callable[[str, "str | None"], None]
_observer: Observer | None = None


def reached(point: str, stay: str | None = None) -> None:
    """The work got to ``point`` (for ``stay``, a stay's code, when there is one)."""
    if _observer is not None:
        _observer(point, stay)


@contextmanager
def observed_by(observer: Observer) -> Iterator[None]:
    """Let ``observer`` see (and interrupt, by raising) every point reached in this process."""
    global _observer
    previous, _observer = _observer, observer
    try:
        yield
    finally:
        _observer = previous
