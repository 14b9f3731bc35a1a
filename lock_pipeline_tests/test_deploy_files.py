"""The deployment files under deploy/ name only things that exist in the project and its dependencies.

Fast and offline (no Docker, no helm, no cluster): the files are parsed, and everything they name is
looked up where it is defined.

- every command (systemd ExecStart, the image's CMD, compose commands and health checks, the Helm
  chart's code server and init container, the webhook manifests): ``lock-pipeline <command>`` parses
  with ``lock_pipeline.cli._parser()``; ``dagster``/``dagster-webserver``/``dagster-daemon`` are console
  scripts of installed distributions, and their subcommands and options exist on the click commands;
  ``-m`` names a module of the package (found, not imported: it needs credentials); ``--location-name``
  is the project's code location;
- every LOCK_PIPELINE_*, STAYS_*, TUYA_* and DAGSTER_HOME named anywhere in a file (comments
  included) is a setting of ``setting_specs()`` or a variable ``service_environment()`` produces, and the
  env example lists all of them;
- the Dagster UI is never published beyond loopback (compose ports, the systemd bind address, the
  chart's Service type and ingress);
- the Helm values' queue limits, run monitoring and retention are the project's dagster.yaml's.

Each checker returns a list of problems; ``test_the_checks_catch_mistakes`` feeds each one a wrong
snippet, so a checker that stopped looking would fail there.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.metadata
import importlib.util
import io
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SYSTEMD = DEPLOY / "systemd"
VENV_BIN = "/opt/lock-pipeline/venv/bin/"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCATION = PYPROJECT["tool"]["dagster"]["code_location_name"]
IMAGE_HOME = "/var/lib/lock-pipeline"
IMAGE_DAGSTER_HOME = f"{IMAGE_HOME}/dagster"
ENV_SECRET = "lock-pipeline-env"

DAGSTER_PROGRAMS = {"dagster", "dagster-webserver", "dagster-daemon"}
# Programs of the base images (postgres:16, python:3.11-slim), not ours to look up.
IMAGE_PROGRAMS = {"pg_isready", "python"}
ENV_NAME = re.compile(r"\b(?:LOCK_PIPELINE|STAYS|TUYA)_[A-Z0-9_]*[A-Z0-9]\b|\bDAGSTER_HOME\b")

# What each role runs, by the name the files give it (systemd unit lock-pipeline-<role>, compose service <role>).
ROLES = {
    "migrate": ["lock-pipeline", "migrate"],
    "code": ["dagster", "code-server", "start"],
    "daemon": ["dagster-daemon", "run"],
    "webserver": ["dagster-webserver"],
    "webhooks": ["lock-pipeline", "webhooks"],
}
# Roles that write to LOCK_PIPELINE_HOME (instance files, compute logs); the receiver does not.
WRITERS = {"migrate", "code", "daemon", "webserver"}


# --------------------------------------------------------------------------------------------------
# What the project defines
# --------------------------------------------------------------------------------------------------


@functools.cache
def known_variables() -> frozenset[str]:
    """Every setting's variable, and every variable the services' environment is made of."""
    from cryptography.fernet import Fernet

    from lock_pipeline.runtime import service_environment
    from lock_pipeline.settings import Settings, setting_specs

    produced = service_environment(Settings(), "postgresql://user:secret@db.internal/lock_pipeline",
                                   Fernet.generate_key().decode())
    return frozenset({spec.env for spec in setting_specs()} | set(produced))


def setting_names() -> set[str]:
    from lock_pipeline.settings import setting_specs

    return {spec.env for spec in setting_specs()}


def env_name_problems(text: str, where: str) -> list[str]:
    unknown = sorted(set(ENV_NAME.findall(text)) - known_variables())
    return [f"{where}: {name} is neither a setting (setting_specs()) nor made by service_environment()"
            for name in unknown]


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------


def command_problems(argv: list[str], where: str) -> list[str]:
    if not argv:
        return [f"{where}: empty command"]
    program, args = argv[0], list(argv[1:])
    if program.startswith("/"):
        if not program.startswith(VENV_BIN):
            return [f"{where}: {program} is not in the venv {VENV_BIN}"]
        program = program[len(VENV_BIN):]
    if program == "lock-pipeline":
        return lock_pipeline_problems(args, where)
    if program in DAGSTER_PROGRAMS:
        return dagster_problems(program, args, where)
    if program in IMAGE_PROGRAMS:
        return []
    return [f"{where}: unknown program {program!r}"]


def lock_pipeline_problems(args: list[str], where: str) -> list[str]:
    from lock_pipeline.cli import _parser

    if PYPROJECT["project"]["scripts"].get("lock-pipeline") != "lock_pipeline.cli:main":
        return [f"{where}: pyproject.toml no longer installs `lock-pipeline` as lock_pipeline.cli:main"]
    parser = _parser()
    parser.exit_on_error = False
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except (SystemExit, argparse.ArgumentError) as error:
        said = stderr.getvalue().strip().splitlines()
        reason = said[-1] if said else str(error)
        return [f"{where}: `lock-pipeline {shlex.join(args)}` is not a command of lock_pipeline.cli: {reason}"]
    return []


@functools.cache
def console_command(program: str) -> click.Command | None:
    """The click command behind an installed console script (Dagster's modules keep it as ``cli``)."""
    entry = next((ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == program), None)
    if entry is None:
        return None
    command = getattr(importlib.import_module(entry.module), "cli", None)
    return command if isinstance(command, click.Command) else None


def dagster_problems(program: str, args: list[str], where: str) -> list[str]:
    command = console_command(program)
    if command is None:
        return [f"{where}: no installed distribution provides the console script {program!r} (or it is not click)"]
    path = [program]
    ctx = click.Context(command, info_name=program)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(ctx, args[0])
        if sub is None:
            return [f"{where}: `{' '.join(path)}` has no subcommand {args[0]!r}"]
        path.append(args.pop(0))
        command, ctx = sub, click.Context(sub, info_name=path[-1], parent=ctx)
    if isinstance(command, click.Group):
        return [f"{where}: `{' '.join(path)}` needs a subcommand"]
    options = {name: param for param in command.get_params(ctx) if isinstance(param, click.Option)
               for name in (*param.opts, *param.secondary_opts)}
    takes_arguments = any(isinstance(param, click.Argument) for param in command.params)
    problems, values = [], {}
    i = 0
    while i < len(args):
        token = args[i]
        if token.startswith("-") and token != "-":
            name, has_inline, inline = token.partition("=")
            param = options.get(name)
            if param is None:
                problems.append(f"{where}: `{' '.join(path)}` has no option {name}")
            elif not (param.is_flag or param.count):
                if has_inline:
                    values[param.name] = inline
                elif i + 1 < len(args):
                    i += 1
                    values[param.name] = args[i]
                else:
                    problems.append(f"{where}: `{' '.join(path)}` option {name} needs a value")
        elif not takes_arguments:
            problems.append(f"{where}: `{' '.join(path)}` takes no argument {token!r}")
        i += 1
    if "module_name" in values:
        problems += module_problems(values["module_name"], where)
    if "location_name" in values and values["location_name"] != LOCATION:
        problems.append(f"{where}: --location-name {values['location_name']} is not the project's code "
                        f"location {LOCATION!r} (pyproject.toml [tool.dagster])")
    return problems


def module_problems(name: str, where: str) -> list[str]:
    """The module exists in the package (found, not imported: lock_pipeline.definitions needs credentials)."""
    if not name.startswith("lock_pipeline."):
        return [f"{where}: -m {name} is not a module of lock_pipeline"]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        return [f"{where}: -m {name}: no such module in the package"]
    return []


def option_value(argv: list[str], *names: str) -> str | None:
    for i, token in enumerate(argv[:-1]):
        if token in names:
            return argv[i + 1]
    return None


def role_problems(role: str, argv: list[str], where: str) -> list[str]:
    expected = ROLES[role]
    program = argv[0].removeprefix(VENV_BIN) if argv else ""
    if [program, *argv[1:len(expected)]] != expected:
        return [f"{where}: the {role} role must run `{' '.join(expected)}`, not `{shlex.join(argv)}`"]
    return []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# --------------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        logical.append((keyword.upper(), rest.strip()))
    return logical


def dockerfile_cmd(text: str) -> list[str]:
    cmds = [rest for keyword, rest in dockerfile_instructions(text) if keyword == "CMD"]
    return json.loads(cmds[-1]) if cmds else []


def dockerfile_problems(text: str, where: str = "deploy/Dockerfile") -> list[str]:
    instructions = dockerfile_instructions(text)
    problems = env_name_problems(text, where)
    args = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions:
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    images = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), stage[0][1].split()[0])
              for stage in stages]
    if len(stages) != 2 or " as " not in stages[0][0][1].lower():
        problems.append(f"{where}: expected a named build stage and a runtime stage")
        return problems
    if images[-1] != "python:3.11-slim":
        problems.append(f"{where}: the runtime stage is {images[-1]}, not python:3.11-slim")
    build_runs = " ".join(rest for keyword, rest in stages[0] if keyword == "RUN")
    if not re.search(r"pip wheel .*--no-deps.* \.(\s|$)", build_runs + " "):
        problems.append(f"{where}: the build stage does not build the project's wheel (`pip wheel --no-deps .`)")
    runtime = stages[1]
    if not any(keyword == "RUN" and "pip install" in rest and ".whl" in rest for keyword, rest in runtime):
        problems.append(f"{where}: the runtime stage does not install the wheel")
    env = {}
    for keyword, rest in runtime:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest) if "=" in pair)
    for name, value in (("LOCK_PIPELINE_HOME", IMAGE_HOME), ("DAGSTER_HOME", IMAGE_DAGSTER_HOME)):
        if env.get(name) != value:
            problems.append(f"{where}: ENV {name} is {env.get(name)!r}, not {value}")
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"{where}: the runtime stage must run as a non-root USER")
    if not any(keyword == "EXPOSE" and "4000" in rest.split() for keyword, rest in runtime):
        problems.append(f"{where}: EXPOSE 4000 is missing")
    if any(keyword == "ENTRYPOINT" for keyword, _ in runtime):
        problems.append(f"{where}: no ENTRYPOINT (Dagster's chart starts the code server through the args)")
    cmd = dockerfile_cmd(text)
    problems += role_problems("code", cmd, f"{where} CMD")
    if option_value(cmd, "-m", "--module-name") is None or option_value(cmd, "--location-name") is None:
        problems.append(f"{where}: CMD must name the module (-m) and the location (--location-name)")
    return problems


def dockerignore_problems(text: str, where: str = ".dockerignore") -> list[str]:
    patterns = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    problems = [f"{where}: {needed} must be kept out of the build context"
                for needed in (".git", ".venv", ".lock_pipeline", "deploy/lock-pipeline.env")
                if not any(fnmatch(needed, p) or fnmatch(needed, p.removeprefix("**/")) for p in patterns)]
    problems += [f"{where}: {pattern} would keep {needed} (needed by the wheel build) out of the context"
                 for needed in ("pyproject.toml", "README.md", "lock_pipeline", "sql", "dagster.yaml", "workspace.yaml")
                 for pattern in patterns if fnmatch(needed, pattern)]
    return problems


# --------------------------------------------------------------------------------------------------
# systemd
# --------------------------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [word for k, value in unit.get(section, []) if k == key for word in value.split()]


def unit_exec_start(unit: dict[str, list[tuple[str, str]]]) -> list[str]:
    starts = [value for key, value in unit.get("Service", []) if key == "ExecStart"]
    return shlex.split(starts[0].lstrip("-@:+!")) if len(starts) == 1 else []


def systemd_commands(units: dict[str, str]) -> list[tuple[str, list[str]]]:
    return [(f"systemd:{name}", unit_exec_start(parse_unit(text))) for name, text in sorted(units.items())
            if name.endswith(".service")]


def systemd_problems(units: dict[str, str]) -> list[str]:
    problems = []
    for name, text in sorted(units.items()):
        problems += env_name_problems(text, name)
    expected = {f"lock-pipeline-{role}.service" for role in ROLES} | {"lock-pipeline.target"}
    problems += [f"deploy/systemd: {name} is missing" for name in sorted(expected - set(units))]
    target = parse_unit(units.get("lock-pipeline.target", ""))
    wanted = set(unit_values(target, "Unit", "Wants"))
    for role in ROLES:
        name = f"lock-pipeline-{role}.service"
        if name not in units:
            continue
        unit = parse_unit(units[name])
        service = dict(unit.get("Service", []))
        if name not in wanted:
            problems.append(f"lock-pipeline.target: does not want {name}")
        if "lock-pipeline.target" not in unit_values(unit, "Install", "WantedBy") \
                or "lock-pipeline.target" not in unit_values(unit, "Unit", "PartOf"):
            problems.append(f"{name}: not PartOf= and WantedBy= lock-pipeline.target")
        for key, value in (("User", "lock-pipeline"), ("EnvironmentFile", "/etc/lock-pipeline/service.env"),
                           ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                           ("PrivateTmp", "yes")):
            if service.get(key) != value:
                problems.append(f"{name}: {key}={service.get(key)} (expected {value})")
        writable = IMAGE_HOME in unit_values(unit, "Service", "ReadWritePaths")
        if role in WRITERS and not writable:
            problems.append(f"{name}: ReadWritePaths= must include LOCK_PIPELINE_HOME ({IMAGE_HOME})")
        if role == "migrate":
            if service.get("Type") != "oneshot":
                problems.append(f"{name}: Type=oneshot expected")
        else:
            if service.get("Restart") not in {"always", "on-failure"}:
                problems.append(f"{name}: no restart policy")
            for key in ("Requires", "After"):
                if "lock-pipeline-migrate.service" not in unit_values(unit, "Unit", key):
                    problems.append(f"{name}: {key}= lacks lock-pipeline-migrate.service")
        argv = unit_exec_start(unit)
        problems += role_problems(role, argv, name)
        if argv and not argv[0].startswith(VENV_BIN):
            problems.append(f"{name}: {argv[0]} is not in the venv {VENV_BIN}")
        if role == "webserver":
            host = option_value(argv, "-h", "--host")
            if host is None or not is_loopback(host):
                problems.append(f"{name}: the webserver binds {host or 'its default'}, not loopback: the UI has no login")
            if option_value(argv, "-p", "--port") != "${LOCK_PIPELINE_UI_PORT}":
                problems.append(f"{name}: -p must be ${{LOCK_PIPELINE_UI_PORT}}, the port `lock-pipeline sync` and "
                                "`status` reach the webserver on")
        if role in {"daemon", "webserver"} and option_value(argv, "-w", "--workspace") != "${DAGSTER_HOME}/workspace.yaml":
            problems.append(f"{name}: -w must be ${{DAGSTER_HOME}}/workspace.yaml (written by migrate)")
    return problems


# --------------------------------------------------------------------------------------------------
# Docker Compose
# --------------------------------------------------------------------------------------------------


def compose_argv(value) -> list[str]:
    return list(value) if isinstance(value, list) else shlex.split(value or "")


def healthcheck_argv(test) -> list[str]:
    if isinstance(test, str):
        return shlex.split(test)
    if test and test[0] == "CMD":
        return list(test[1:])
    if test and test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    return []


def lock_pipeline_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose.get("services", {}).items()
            if "build" in service or str(service.get("image", "")).startswith("lock-pipeline")}


def compose_commands(compose: dict, image_cmd: list[str]) -> list[tuple[str, list[str]]]:
    commands = []
    ours = lock_pipeline_services(compose)
    for name, service in compose.get("services", {}).items():
        if name in ours:
            if "entrypoint" in service:
                commands.append((f"compose:{name} entrypoint", compose_argv(service["entrypoint"])))
            commands.append((f"compose:{name}", compose_argv(service["command"]) if "command" in service else image_cmd))
        if "healthcheck" in service:
            commands.append((f"compose:{name} healthcheck", healthcheck_argv(service["healthcheck"].get("test"))))
    return commands


def published_port_problems(name: str, service: dict) -> list[str]:
    problems = []
    if service.get("network_mode") == "host":
        problems.append(f"compose:{name}: network_mode host publishes every port on every interface")
    for port in service.get("ports", []):
        if isinstance(port, dict):
            host = port.get("host_ip", "")
        else:
            text = str(port)
            host = text.rsplit(":", 2)[0] if text.count(":") >= 2 or text.startswith("[") else ""
        if not is_loopback(host):
            problems.append(f"compose:{name}: port {port} is published on {host or 'every interface'}: "
                            "publish on 127.0.0.1 only")
    return problems


def compose_problems(compose: dict, image_cmd: list[str], text: str = "") -> list[str]:
    where = "deploy/docker-compose.yml"
    problems = env_name_problems(text or yaml.safe_dump(compose), where)
    services = compose.get("services", {})
    ours = lock_pipeline_services(compose)
    expected = set(ROLES) | {"postgres"}
    problems += [f"{where}: service {name} is missing" for name in sorted(expected - set(services))]
    for name, service in services.items():
        problems += published_port_problems(name, service)
    postgres = services.get("postgres", {})
    if not str(postgres.get("image", "")).startswith("postgres:16") or "healthcheck" not in postgres:
        problems.append(f"{where}: postgres must be postgres:16 with a health check")
    if not any(str(v).endswith(":/var/lib/postgresql/data") for v in postgres.get("volumes", [])):
        problems.append(f"{where}: postgres keeps its data outside a volume")
    images = {service.get("image") for service in ours.values()}
    if len(images) != 1:
        problems.append(f"{where}: the lock_pipeline services must share one image, not {images}")
    for name, service in ours.items():
        env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        problems += [f"compose:{name}: {key} (environment) is not a known variable"
                     for key in env if ENV_NAME.fullmatch(key) and key not in known_variables()]
        build = service.get("build") or {}
        if build and not (DEPLOY / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve().is_file():
            problems.append(f"compose:{name}: the build's Dockerfile does not exist")
        env_file = service.get("env_file")
        if env_file != "lock-pipeline.env" or not (DEPLOY / f"{env_file}.example").is_file():
            problems.append(f"compose:{name}: env_file must be lock-pipeline.env, described by lock-pipeline.env.example")
        if env.get("LOCK_PIPELINE_HOME") != IMAGE_HOME or env.get("DAGSTER_HOME") != IMAGE_DAGSTER_HOME:
            problems.append(f"compose:{name}: LOCK_PIPELINE_HOME/DAGSTER_HOME must be {IMAGE_HOME} and {IMAGE_DAGSTER_HOME}")
        if env.get("LOCK_PIPELINE_CODE_SERVER_HOST") != "code" or env.get("LOCK_PIPELINE_CODE_SERVER_PORT") != "4000":
            problems.append(f"compose:{name}: LOCK_PIPELINE_CODE_SERVER_HOST/PORT must be the code service's code:4000")
        argv = compose_argv(service["command"]) if "command" in service else image_cmd
        if name in ROLES:
            problems += role_problems(name, argv, f"compose:{name}")
        if name in WRITERS and f"lock-pipeline-home:{IMAGE_HOME}" not in service.get("volumes", []):
            problems.append(f"compose:{name}: must mount the shared lock-pipeline-home volume on {IMAGE_HOME}")
        if name in {"webserver", "daemon"}:
            if option_value(argv, "-w", "--workspace") != f"{IMAGE_DAGSTER_HOME}/workspace.yaml":
                problems.append(f"compose:{name}: -w must be the workspace.yaml migrate writes into {IMAGE_DAGSTER_HOME}")
            if (service.get("depends_on") or {}).get("code", {}).get("condition") != "service_healthy":
                problems.append(f"compose:{name}: must start after the code server is healthy")
    if (services.get("migrate", {}).get("depends_on") or {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append(f"{where}: migrate must wait for a healthy postgres")
    if (services.get("code", {}).get("depends_on") or {}).get("migrate", {}).get("condition") \
            != "service_completed_successfully":
        problems.append(f"{where}: the code server must start after migrate succeeded")
    if not any(is_loopback(str(p).rsplit(":", 2)[0]) for p in services.get("webserver", {}).get("ports", [])):
        problems.append(f"{where}: the webserver is not published on the host's loopback")
    return problems


# --------------------------------------------------------------------------------------------------
# The env examples
# --------------------------------------------------------------------------------------------------


def env_file_entries(text: str) -> dict[str, tuple[str, bool]]:
    """name -> (value, set); a commented ``# NAME=value`` line lists a variable left at its default."""
    entries = {}
    for raw in text.splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", raw.strip())
        if match:
            entries[match.group(2)] = (match.group(3), match.group(1) is None)
    return entries


def env_example_problems(text: str, postgres_text: str, compose: dict) -> list[str]:
    where = "deploy/lock-pipeline.env.example"
    entries = env_file_entries(text)
    problems = env_name_problems(text, where)
    problems += [f"{where}: {name} is not listed" for name in sorted(known_variables() - set(entries))]
    for name in ("LOCK_PIPELINE_DATABASE_URL", "LOCK_PIPELINE_DAGSTER_STORAGE_URL", "LOCK_PIPELINE_PIN_KEY",
                 "LOCK_PIPELINE_WEBHOOK_TOKEN", "STAYS_BASE_URL", "STAYS_CLIENT_ID", "STAYS_CLIENT_SECRET",
                 "TUYA_ACCESS_ID", "TUYA_ACCESS_SECRET", "TUYA_REGION"):
        if not entries.get(name, ("", False))[1]:
            problems.append(f"{where}: {name} is required in production and must be set (a placeholder)")
    from sqlalchemy.engine import make_url

    postgres = {name: value for name, (value, is_set) in env_file_entries(postgres_text).items() if is_set}
    for name, driver in (("LOCK_PIPELINE_DATABASE_URL", "postgresql"), ("LOCK_PIPELINE_DAGSTER_STORAGE_URL",
                                                                          "postgresql+psycopg2")):
        url = make_url(entries.get(name, ("postgresql://", True))[0])
        if url.drivername != driver:
            problems.append(f"{where}: {name} must use {driver}:// (got {url.drivername}://)")
        if url.host not in compose.get("services", {}) or url.username != postgres.get("POSTGRES_USER") \
                or url.database != postgres.get("POSTGRES_DB"):
            problems.append(f"{where}: {name} must name the compose postgres service and deploy/postgres.env's user and db")
    return problems


# --------------------------------------------------------------------------------------------------
# Helm values (Dagster's chart) and the webhook manifests
# --------------------------------------------------------------------------------------------------


def helm_commands(values: dict, manifests: list[dict]) -> list[tuple[str, list[str]]]:
    commands = []
    for deployment in values.get("dagster-user-deployments", {}).get("deployments", []):
        name, port = deployment.get("name"), str(deployment.get("port"))
        if deployment.get("codeServerArgs"):
            commands.append((f"helm:{name}", ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", port,
                                              *deployment["codeServerArgs"]]))
        elif deployment.get("dagsterApiGrpcArgs"):
            commands.append((f"helm:{name}", ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", port,
                                              *deployment["dagsterApiGrpcArgs"]]))
        else:
            commands.append((f"helm:{name}", []))
        for container in deployment.get("initContainers", []):
            commands.append((f"helm:{name} init {container.get('name')}",
                             [*container.get("command", []), *container.get("args", [])]))
    for manifest in manifests:
        if manifest.get("kind") == "Deployment":
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                commands.append((f"webhooks.yaml:{manifest['metadata']['name']}",
                                 [*container.get("command", []), *container.get("args", [])]))
    return commands


def _secret_names(sources) -> set[str]:
    return {source.get("name") for source in sources or []}


def helm_problems(values: dict, manifests: list[dict], text: str = "", manifests_text: str = "") -> list[str]:
    where = "deploy/helm/values.yaml"
    problems = env_name_problems(text or yaml.safe_dump(values), where)
    problems += env_name_problems(manifests_text or yaml.safe_dump_all(manifests), "deploy/helm/webhooks.yaml")
    if values.get("global", {}).get("dagsterHome") != IMAGE_DAGSTER_HOME:
        problems.append(f"{where}: global.dagsterHome must be the image's DAGSTER_HOME {IMAGE_DAGSTER_HOME}")
    deployments = values.get("dagster-user-deployments", {}).get("deployments", [])
    if len(deployments) != 1 or not values.get("dagster-user-deployments", {}).get("enabled"):
        problems.append(f"{where}: expected our image as the one enabled user deployment")
    for deployment in deployments:
        if ENV_SECRET not in _secret_names(deployment.get("envSecrets")):
            problems.append(f"{where}: deployment {deployment.get('name')} does not read the Secret {ENV_SECRET}")
        for _, argv in helm_commands({"dagster-user-deployments": {"deployments": [deployment]}}, [])[:1]:
            problems += role_problems("code", argv, f"helm:{deployment.get('name')}")
        inits = deployment.get("initContainers", [])
        if not any(init.get("command", [])[:2] == ROLES["migrate"] for init in inits):
            problems.append(f"{where}: no init container runs `lock-pipeline migrate` before the code server")
        for init in inits:
            if ENV_SECRET not in {s.get("secretRef", {}).get("name") for s in init.get("envFrom", [])}:
                problems.append(f"{where}: init container {init.get('name')} does not read the Secret {ENV_SECRET}")
    servers = values.get("dagsterWebserver", {}).get("workspace", {}).get("servers", [])
    by_name = {d.get("name"): d for d in deployments}
    for server in servers:
        deployment = by_name.get(server.get("host"))
        if server.get("name") != LOCATION or deployment is None or server.get("port") != deployment.get("port"):
            problems.append(f"{where}: workspace server {server} must be location {LOCATION!r} at a user deployment's "
                            "Service and port")
    launcher = values.get("runLauncher", {})
    if launcher.get("type") != "K8sRunLauncher" or ENV_SECRET not in _secret_names(
            launcher.get("config", {}).get("k8sRunLauncher", {}).get("envSecrets")):
        problems.append(f"{where}: runLauncher must be K8sRunLauncher with envSecrets {ENV_SECRET}")
    postgresql = values.get("postgresql", {})
    if postgresql.get("enabled") is not False or not postgresql.get("postgresqlHost"):
        problems.append(f"{where}: postgresql must be external (enabled: false, postgresqlHost)")
    if postgresql.get("postgresqlScheme") != "postgresql+psycopg2":
        problems.append(f"{where}: postgresql.postgresqlScheme must be postgresql+psycopg2 (SQLAlchemy 2.1 makes a "
                        "bare postgresql:// psycopg 3, and dagster-postgres fails on NOTIFY)")
    if values.get("generatePostgresqlPasswordSecret") is not False or not values.get("global", {}).get("postgresqlSecretName"):
        problems.append(f"{where}: the Postgres password must come from an existing Secret (global.postgresqlSecretName)")
    service = values.get("dagsterWebserver", {}).get("service", {})
    if service.get("type", "ClusterIP") != "ClusterIP" or values.get("ingress", {}).get("enabled"):
        problems.append(f"{where}: the webserver must stay a ClusterIP Service with no ingress: the UI has no login")
    services = {m["metadata"]["name"]: m for m in manifests if m.get("kind") == "Service"}
    deployments_running = {m["metadata"]["name"]: m for m in manifests if m.get("kind") == "Deployment"}
    for name, deployment in deployments_running.items():
        containers = deployment["spec"]["template"]["spec"]["containers"]
        for container in containers:
            problems += role_problems("webhooks", container.get("command", []), f"webhooks.yaml:{name}")
            if ENV_SECRET not in {s.get("secretRef", {}).get("name") for s in container.get("envFrom", [])}:
                problems.append(f"webhooks.yaml:{name}: does not read the Secret {ENV_SECRET}")
    for name, svc in services.items():
        if svc["spec"].get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"webhooks.yaml: Service {name} must be ClusterIP (the Ingress exposes it, with TLS)")
    for ingress in (m for m in manifests if m.get("kind") == "Ingress"):
        if not ingress["spec"].get("tls"):
            problems.append(f"webhooks.yaml: Ingress {ingress['metadata']['name']} has no TLS")
        for rule in ingress["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path.get("backend", {}).get("service", {}).get("name")
                if backend not in services or not path.get("path", "").startswith("/stays/webhooks"):
                    problems.append(f"webhooks.yaml: Ingress path {path.get('path')} -> {backend}: only the webhook "
                                    "receiver's /stays/webhooks/ may be exposed")
    return problems


def instance_policy_problems(dagster_yaml: dict, values: dict) -> list[str]:
    """The chart must render the same queue, run monitoring, retention and telemetry as dagster.yaml."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.instance.config import (
        get_default_tick_retention_settings,
        get_tick_retention_settings,
    )

    where = "deploy/helm/values.yaml"
    problems = []
    daemon = values.get("dagsterDaemon", {})
    coordinator = daemon.get("runCoordinator", {})
    queued = coordinator.get("config", {}).get("queuedRunCoordinator", {})
    ours = dagster_yaml["run_coordinator"]["config"]

    def limits(items, key, value, limit):
        return sorted((item[key], json.dumps(item.get(value), sort_keys=True), item[limit]) for item in items or [])

    if not coordinator.get("enabled") or coordinator.get("type") != "QueuedRunCoordinator":
        problems.append(f"{where}: the daemon's run coordinator must be the QueuedRunCoordinator")
    if limits(queued.get("tagConcurrencyLimits"), "key", "value", "limit") != \
            limits(ours.get("tag_concurrency_limits"), "key", "value", "limit"):
        problems.append(f"{where}: tag concurrency limits {queued.get('tagConcurrencyLimits')} differ from "
                        f"dagster.yaml's {ours.get('tag_concurrency_limits')}")
    if queued.get("maxConcurrentRuns") != ours.get("max_concurrent_runs"):
        problems.append(f"{where}: maxConcurrentRuns {queued.get('maxConcurrentRuns')} differs from dagster.yaml's "
                        f"{ours.get('max_concurrent_runs')}")
    monitoring = daemon.get("runMonitoring", {})
    theirs = {"enabled": monitoring.get("enabled", False),
              "start_timeout_seconds": monitoring.get("startTimeoutSeconds", 180),
              "cancel_timeout_seconds": monitoring.get("cancelTimeoutSeconds", 180),
              "poll_interval_seconds": monitoring.get("pollIntervalSeconds", 120)}
    mine = {"enabled": False, "start_timeout_seconds": 180, "cancel_timeout_seconds": 180, "poll_interval_seconds": 120,
            **dagster_yaml.get("run_monitoring", {})}
    if theirs != mine:
        problems.append(f"{where}: run monitoring {theirs} differs from dagster.yaml's {mine}")
    retention = values.get("retention", {})
    for kind, instigator in (("schedule", InstigatorType.SCHEDULE), ("sensor", InstigatorType.SENSOR)):
        default = get_default_tick_retention_settings(instigator)
        chart = {"purge_after_days": retention.get(kind, {}).get("purgeAfterDays")} if retention.get("enabled") else None
        if get_tick_retention_settings(chart, default) != get_tick_retention_settings(
                dagster_yaml.get("retention", {}).get(kind), default):
            problems.append(f"{where}: {kind} tick retention differs from dagster.yaml's")
    if values.get("telemetry", {}).get("enabled", True) != dagster_yaml.get("telemetry", {}).get("enabled", True):
        problems.append(f"{where}: telemetry differs from dagster.yaml's")
    return problems


# --------------------------------------------------------------------------------------------------
# The files themselves
# --------------------------------------------------------------------------------------------------


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def systemd_units() -> dict[str, str]:
    return {path.name: read(path) for path in sorted(SYSTEMD.glob("lock-pipeline*")) if path.suffix in {".service", ".target"}}


def load_compose() -> dict:
    return yaml.safe_load(read(DEPLOY / "docker-compose.yml"))


def load_helm() -> tuple[dict, list[dict]]:
    return (yaml.safe_load(read(DEPLOY / "helm" / "values.yaml")),
            [doc for doc in yaml.safe_load_all(read(DEPLOY / "helm" / "webhooks.yaml")) if doc])


def every_command() -> list[tuple[str, list[str]]]:
    image_cmd = dockerfile_cmd(read(DEPLOY / "Dockerfile"))
    values, manifests = load_helm()
    return [("Dockerfile CMD", image_cmd), *systemd_commands(systemd_units()),
            *compose_commands(load_compose(), image_cmd), *helm_commands(values, manifests)]


@pytest.mark.parametrize(("where", "argv"), every_command(), ids=[where for where, _ in every_command()])
def test_every_command_exists(where, argv):
    assert command_problems(argv, where) == []


def test_dockerfile():
    assert dockerfile_problems(read(DEPLOY / "Dockerfile")) == []
    assert dockerignore_problems(read(ROOT / ".dockerignore")) == []


def test_systemd_units():
    assert systemd_problems(systemd_units()) == []


def test_compose():
    text = read(DEPLOY / "docker-compose.yml")
    assert compose_problems(yaml.safe_load(text), dockerfile_cmd(read(DEPLOY / "Dockerfile")), text) == []


def test_env_example_lists_every_setting():
    assert env_example_problems(read(DEPLOY / "lock-pipeline.env.example"), read(DEPLOY / "postgres.env.example"),
                                load_compose()) == []


def test_helm_values_and_webhook_manifests():
    values, manifests = load_helm()
    assert helm_problems(values, manifests, read(DEPLOY / "helm" / "values.yaml"),
                         read(DEPLOY / "helm" / "webhooks.yaml")) == []


def test_helm_values_carry_the_instance_policy_of_dagster_yaml():
    assert instance_policy_problems(yaml.safe_load(read(ROOT / "dagster.yaml")), load_helm()[0]) == []


def test_the_location_name_is_one_name():
    workspace = yaml.safe_load(read(ROOT / "lock_pipeline" / "templates" / "workspace.grpc.yaml").replace("{port}", "4000"))
    assert workspace["load_from"][0]["grpc_server"]["location_name"] == LOCATION


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not Path("/lib/systemd/system").is_dir(),
                    reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """systemd's own parser, in a scratch root (the venv's programs as empty stand-ins)."""
    bin_dir = tmp_path / VENV_BIN.strip("/")
    bin_dir.mkdir(parents=True)
    for program in ("lock-pipeline", *DAGSTER_PROGRAMS):
        (bin_dir / program).write_text("#!/bin/sh\n")
        (bin_dir / program).chmod(0o755)
    (tmp_path / "etc/lock-pipeline").mkdir(parents=True)
    (tmp_path / "etc/lock-pipeline/service.env").write_text("")
    units = tmp_path / "etc/systemd/system"
    shutil.copytree("/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    units.mkdir(parents=True)
    for name, text in systemd_units().items():
        (units / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", f"--root={tmp_path}", *sorted(systemd_units())],
                            check=False, cwd=units, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --------------------------------------------------------------------------------------------------
# Each check can fail
# --------------------------------------------------------------------------------------------------

GOOD_CMD = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "lock_pipeline.definitions",
            "--location-name", LOCATION]


def _compose_with(**service) -> dict:
    compose = load_compose()
    compose["services"]["webserver"] = {**compose["services"]["webserver"], **service}
    return compose


def _unit_with(role: str, old: str, new: str) -> dict[str, str]:
    units = systemd_units()
    name = f"lock-pipeline-{role}.service"
    assert old in units[name]
    units[name] = units[name].replace(old, new)
    return units


def _helm_with(edit) -> tuple[dict, list[dict]]:
    values, manifests = load_helm()
    edit(values, manifests)
    return values, manifests


def _dagster_yaml() -> dict:
    return yaml.safe_load(read(ROOT / "dagster.yaml"))


def _commands_problems(commands: list[tuple[str, list[str]]]) -> list[str]:
    return [problem for where, argv in commands for problem in command_problems(argv, where)]


def _set_tuya_limit(values, _manifests):
    values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"][0]["limit"] = 6


def _bare_scheme(values, _manifests):
    values["postgresql"]["postgresqlScheme"] = "postgresql"


def _ingress_to_the_ui(_values, manifests):
    ingress = next(m for m in manifests if m["kind"] == "Ingress")
    ingress["spec"]["rules"][0]["http"]["paths"].append(
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "lock-pipeline-dagster-webserver",
                                                                    "port": {"number": 80}}}})


def _public_webserver_service(values, _manifests):
    values["dagsterWebserver"]["service"]["type"] = "LoadBalancer"


WRONG = [
    ("lock-pipeline subcommand", lambda: _commands_problems(compose_commands(_compose_with(command=["lock-pipeline", "nosuchcommand"]), GOOD_CMD)),
     "nosuchcommand"),
    ("lock-pipeline flag", lambda: command_problems(["lock-pipeline", "migrate", "--everything"], "x"), "--everything"),
    ("variable in compose", lambda: compose_problems(_compose_with(environment={"LOCK_PIPELINE_NOPE": "1"}), GOOD_CMD),
     "LOCK_PIPELINE_NOPE"),
    ("variable in a comment", lambda: env_name_problems("# set TUYA_SECRET_KEY here", "x"), "TUYA_SECRET_KEY"),
    ("dagster program", lambda: command_problems(["dagster-deamon", "run"], "x"), "dagster-deamon"),
    ("dagster subcommand", lambda: command_problems(["dagster", "code-server", "stop"], "x"), "'stop'"),
    ("dagster flag", lambda: _commands_problems(systemd_commands(_unit_with("webserver", "-w ", "--no-login -w "))),
     "--no-login"),
    ("dagster option value", lambda: command_problems(["dagster", "code-server", "start", "-p"], "x"), "needs a value"),
    ("module", lambda: command_problems([*GOOD_CMD[:7], "-m", "lock_pipeline.nosuchmodule"], "x"),
     "lock_pipeline.nosuchmodule"),
    ("location name", lambda: command_problems(dockerfile_cmd(read(DEPLOY / "Dockerfile").replace(
        '"--location-name", "lock_pipeline"', '"--location-name", "pipeline"')), "CMD"), "--location-name pipeline"),
    ("program outside the venv", lambda: systemd_problems(_unit_with(
        "daemon", "/opt/lock-pipeline/venv/bin/dagster-daemon", "/usr/bin/dagster-daemon")), "not in the venv"),
    ("role", lambda: systemd_problems(_unit_with("daemon", "dagster-daemon run", "dagster-webserver")), "daemon role"),
    ("UI on all interfaces (compose)", lambda: compose_problems(_compose_with(ports=["3000:3000"]), GOOD_CMD),
     "every interface"),
    ("UI on a public address (compose)", lambda: compose_problems(_compose_with(ports=["0.0.0.0:3000:3000"]), GOOD_CMD),
     "0.0.0.0"),
    ("UI port apart from the commands' (systemd)", lambda: systemd_problems(_unit_with(
        "webserver", "-p ${LOCK_PIPELINE_UI_PORT}", "-p 3000")), "-p must be ${LOCK_PIPELINE_UI_PORT}"),
    ("UI on all interfaces (systemd)", lambda: systemd_problems(_unit_with("webserver", "-h 127.0.0.1", "-h 0.0.0.0")),
     "not loopback"),
    ("UI on a LoadBalancer (helm)", lambda: helm_problems(*_helm_with(_public_webserver_service)), "ClusterIP"),
    ("Ingress to the UI", lambda: helm_problems(*_helm_with(_ingress_to_the_ui)), "lock-pipeline-dagster-webserver"),
    ("tag concurrency limits", lambda: instance_policy_problems(_dagster_yaml(), _helm_with(_set_tuya_limit)[0]),
     "tag concurrency"),
    ("storage scheme", lambda: helm_problems(*_helm_with(_bare_scheme)), "psycopg2"),
    ("Dockerfile ENTRYPOINT", lambda: dockerfile_problems(read(DEPLOY / "Dockerfile") + '\nENTRYPOINT ["tini"]\n'),
     "ENTRYPOINT"),
    ("Dockerfile root user", lambda: dockerfile_problems(read(DEPLOY / "Dockerfile").replace("USER 10001:10001", "USER root")),
     "non-root"),
    ("dockerignore", lambda: dockerignore_problems(".git\n.venv\n"), ".lock_pipeline"),
    ("env example", lambda: env_example_problems(read(DEPLOY / "lock-pipeline.env.example").replace(
        "# LOCK_PIPELINE_TIMEZONE=", "# TIMEZONE="), read(DEPLOY / "postgres.env.example"), load_compose()),
     "LOCK_PIPELINE_TIMEZONE is not listed"),
    ("env example driver", lambda: env_example_problems(read(DEPLOY / "lock-pipeline.env.example").replace(
        "postgresql+psycopg2://", "postgresql://"), read(DEPLOY / "postgres.env.example"), load_compose()),
     "postgresql+psycopg2"),
]


@pytest.mark.parametrize(("check", "wrong", "expected"), WRONG, ids=[check for check, _, _ in WRONG])
def test_the_checks_catch_mistakes(check, wrong, expected):
    problems = wrong()
    assert any(expected in problem for problem in problems), problems
