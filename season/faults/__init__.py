"""The faults a season injects: one small class per kind, and the registry of kinds.

Stays (stays.py), the Tuya cloud and the locks (tuya.py), the pipeline's process, Postgres and
the daemon (process.py). Each kind says how the seed schedules it and what starting it does
(base.py); schedule.py places them in the season. A fault acts only through the sandboxes' own
switches and the product's named checkpoints (points.py): nothing in the product is patched.
"""

from season.faults.base import Fault, FaultSpec, Undo, World
from season.faults.points import FaultPoints, PostgresFault, ProcessKilled
from season.faults.process import DaemonStop, Kill, PostgresRestart
from season.faults.stays import (
    ReceiverDown,
    Stays5xxBurst,
    StaysEmptyFeed,
    StaysMalformed,
    StaysOutage,
    StaysSlow,
    WebhooksDropped,
)
from season.faults.tuya import (
    LockOffline,
    LockOfflineThroughArrival,
    LockStorageFull,
    LockWithoutOfflineCodesOfflineThroughArrival,
    OfflineLockGuestUsesCode,
    Tuya5xx,
    TuyaHtml,
    TuyaMalformed,
    TuyaThrottle,
    TuyaTimeout,
    TuyaTokenExpiry,
)

# The seed schedules the kinds in this order, and the report lists them in it: reordering changes
# every seeded season.
FAULTS: dict[str, type[Fault]] = {cls.kind: cls for cls in (
    StaysOutage, Stays5xxBurst, StaysEmptyFeed, StaysMalformed, StaysSlow,
    TuyaThrottle, TuyaTokenExpiry, Tuya5xx, TuyaTimeout, TuyaHtml, TuyaMalformed,
    LockOffline, LockOfflineThroughArrival, LockStorageFull,
    Kill, PostgresRestart, DaemonStop,
    # Added with webhooks and offline codes; after the others, so the kinds above keep their seeded draws.
    WebhooksDropped, ReceiverDown, LockWithoutOfflineCodesOfflineThroughArrival, OfflineLockGuestUsesCode,
)}
FAULT_KINDS = tuple(FAULTS)

__all__ = ["FAULTS", "FAULT_KINDS", "Fault", "FaultPoints", "FaultSpec", "PostgresFault", "ProcessKilled", "Undo",
           "World"]
