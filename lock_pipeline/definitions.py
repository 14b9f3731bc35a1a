"""The one Dagster entry point: ``dagster dev -m lock_pipeline.definitions`` or workspace.yaml."""

from lock_pipeline.orchestration.definitions import build_definitions
from lock_pipeline.settings import load_settings

defs = build_definitions(load_settings())
