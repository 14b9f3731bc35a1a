"""The Dagster names this project needs that Dagster exports only from private modules.

Dagster has no public API to ask for one run over a range of partitions (what a single-run
backfill is: a run tagged with the range's start and end), and none for the tags the daemon puts
on a sensor's runs. They are imported here, in one place, so an upgrade that moves them breaks
one import with an obvious fix instead of several.
"""

from dagster._core.storage.tags import (  # noqa: F401 - re-exported
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
)


def partition_range_tags(start: str, end: str) -> dict[str, str]:
    """Tags that make a run materialize the partitions ``start``..``end`` (inclusive) of its assets."""
    return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
