"""pyproject.toml's dependencies are exactly what lock_pipeline/ imports.

A dependency used but not declared works in the development venv (something else pulled it in) and
breaks the first install of the wheel that resolves differently; one declared but unused is weight in
every image. Every module of the package is parsed (not imported: no credentials, no side effects),
each top-level import that is neither the standard library nor lock_pipeline is mapped to the
distribution that installs it (``importlib.metadata.packages_distributions()``), and the two sets
must match, but for the few dependencies listed in ``NOT_IMPORTED`` with the reason each is needed.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lock_pipeline"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Declared though no module of lock_pipeline/ imports them; each needed for the reason given.
NOT_IMPORTED = {
    # dagster.yaml's `storage: postgres:` makes Dagster itself import dagster_postgres, to keep runs, event
    # logs and schedule/sensor state in the pipeline's Postgres.
    "dagster-postgres",
    # Run as a program, never imported: the `dagster-webserver` service (deploy/systemd, compose, the Helm
    # chart's image) and `dagster dev`, which `lock-pipeline up` runs and which needs it installed.
    "dagster-webserver",
}


def canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def declared_dependencies() -> set[str]:
    return {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}


def imported_modules(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Top-level module -> the files that import it (absolute imports only; relative ones are the package's)."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(package.parent)))
    return found


def dependency_problems(imports: dict[str, set[str]], declared: set[str], not_imported: set[str],
                        distributions: dict[str, list[str]]) -> list[str]:
    problems, used = [], set()
    for module, where in sorted(imports.items()):
        if module in sys.stdlib_module_names or module == "lock_pipeline":
            continue
        providers = {canonical(d) for d in distributions.get(module, [])}
        if not providers:
            problems.append(f"{module} (imported by {', '.join(sorted(where))}) is installed by no distribution: "
                            "not in the wheel's dependencies nor in the package")
            continue
        used |= providers
        if not providers & declared:
            problems.append(f"{module} (imported by {', '.join(sorted(where))}) comes from {', '.join(sorted(providers))}, "
                            "which pyproject.toml does not declare")
    for name in sorted(declared - used - not_imported):
        problems.append(f"{name} is declared in pyproject.toml but no module of lock_pipeline/ imports it "
                        "(remove it, or list it in NOT_IMPORTED with the reason)")
    for name in sorted(not_imported - declared):
        problems.append(f"NOT_IMPORTED lists {name}, which pyproject.toml does not declare")
    for name in sorted(not_imported & used):
        problems.append(f"NOT_IMPORTED lists {name}, which lock_pipeline/ does import: drop it from the list")
    return problems


def test_declared_dependencies_are_what_the_package_imports():
    problems = dependency_problems(imported_modules(), declared_dependencies(), {canonical(n) for n in NOT_IMPORTED},
                                   importlib.metadata.packages_distributions())
    assert problems == []


def test_the_reasons_of_the_exceptions_still_hold():
    """dagster.yaml still stores in Postgres, and a service still runs dagster-webserver."""
    import yaml

    instance = yaml.safe_load((PACKAGE / "templates" / "dagster.yaml").read_text(encoding="utf-8"))
    assert "postgres" in instance["storage"]
    units = (ROOT / "deploy" / "systemd" / "lock-pipeline-webserver.service").read_text(encoding="utf-8")
    assert "/bin/dagster-webserver " in units


def test_the_check_catches_mistakes():
    distributions = {"numpy": ["numpy"], "httpx": ["httpx"], "yaml": ["PyYAML"]}
    declared = {"httpx", "rapidfuzz", "dagster-postgres", "pyyaml"}
    problems = dependency_problems({"numpy": {"lock_pipeline/mapping/matching.py"}, "httpx": {"a.py"},
                                    "os": {"a.py"}, "lock_pipeline": {"a.py"}, "season": {"b.py"},
                                    "yaml": {"c.py"}},
                                   declared, {"dagster-postgres", "pyyaml", "psycopg2-binary"}, distributions)
    text = "\n".join(problems)
    assert "numpy (imported by lock_pipeline/mapping/matching.py) comes from numpy" in text  # used, not declared
    assert "rapidfuzz is declared" in text  # declared, not used
    assert "season (imported by b.py) is installed by no distribution" in text  # not shipped at all
    assert "NOT_IMPORTED lists psycopg2-binary, which pyproject.toml does not declare" in text
    assert "NOT_IMPORTED lists pyyaml, which lock_pipeline/ does import" in text
    assert "httpx" not in text and "os " not in text and "dagster-postgres" not in text
    assert len(problems) == 5, problems
