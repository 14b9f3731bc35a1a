"""Files shipped inside the package, read through importlib.resources, so a wheel install
(a container image, a production venv) carries its schema and its Dagster templates.

In a checkout they are links to the top-level sql/, dagster.yaml and workspace.yaml, so each
file exists once.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sql_dir() -> Path:
    """sql/ with migrations/ and views/."""
    return Path(str(files("lock_pipeline") / "sql"))


def template_path(name: str) -> Path:
    """dagster.yaml, workspace.yaml (the code location in process, for `lock-pipeline up` and `dagster dev`)
    or workspace.grpc.yaml (the code location as a gRPC server, for the production layout)."""
    path = Path(str(files("lock_pipeline") / "templates" / name))
    if not path.is_file():
        raise FileNotFoundError(f"{name} is missing from the installed package ({path}): reinstall lock_pipeline")
    return path


def template_text(name: str) -> str:
    return template_path(name).read_text(encoding="utf-8")
