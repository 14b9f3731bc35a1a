"""Every setting, declared once: its environment name, default, unit, validation and help.

Each field of :class:`Settings` is one setting; its declaration (``_minutes(...)``, ``_text(...)``,
...) holds everything about it, and everything else reads from here: the Dagster resources, the
access policy, the CLI, the simulator, the tests, the README's table (``lock-pipeline settings
--markdown``) and the SQL views (through the values ``storage.schema`` publishes to Postgres).

Settings are read and validated once at start; every problem is collected and reported
together, each naming the variable and the fix, so a wrong deployment stops at start instead
of failing on the first run.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lock_pipeline.vocabulary import DeliveryChannel

TUYA_REGION_HOSTS: dict[str, str] = {
    "us": "openapi.tuyaus.com",
    "us-e": "openapi-ueaz.tuyaus.com",
    "eu": "openapi.tuyaeu.com",
    "eu-w": "openapi-weaz.tuyaeu.com",
    "in": "openapi.tuyain.com",
    "cn": "openapi.tuyacn.com",
    "sg": "openapi-sg.iotbing.com",
}


class SettingsError(ValueError):
    """One or more settings are wrong; the message lists each with its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"lock_pipeline cannot start, {len(problems)} setting(s) to fix:\n{lines}")


@dataclass(frozen=True)
class Spec:
    """How one environment variable becomes one setting."""

    env: str
    default_text: str            # the default as a person reads it in the README
    unit: str
    help: str
    parse: Callable[[str], Any]  # raises ValueError with the fix in its message
    render: Callable[[Any], str] = str
    secret: bool = False
    override: str = ""           # where a listing or lock can override it (README)


def _declare(default: Any, spec: Spec, *, factory: Callable[[], Any] | None = None) -> Any:
    if factory is not None:
        return field(default_factory=factory, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _bounded_int(env: str, default: int, low: int, high: int, unit: str, help: str, override: str = "") -> Any:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{env}={raw!r} is not a whole number (default {default})") from None
        if not low <= value <= high:
            raise ValueError(f"{env}={value} is out of range: use {low}..{high} (default {default})")
        return value

    return _declare(default, Spec(env, str(default), unit, help, parse, override=override))


def _bounded_number(env: str, default: float, low: float, high: float, help: str) -> Any:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{env}={raw!r} is not a number (default {default:g})") from None
        if not low <= value <= high:
            raise ValueError(f"{env}={value:g} is out of range: use {low:g}..{high:g} (default {default:g})")
        return value

    return _declare(default, Spec(env, f"{default:g}", "score", help, parse, render=lambda v: f"{v:g}"))


def _clock_time(env: str, default: time, help: str, override: str = "") -> Any:
    def parse(raw: str) -> time:
        try:
            return time.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{env}={raw!r} is not a time of day: use HH:MM, e.g. {default:%H:%M}") from None

    return _declare(default, Spec(env, f"{default:%H:%M}", "HH:MM", help, parse,
                                  render=lambda v: v.isoformat(timespec="minutes"), override=override))


def _zone(env: str, default: str, help: str, override: str = "") -> Any:
    def parse(raw: str) -> str:
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{env}={raw!r} is not an IANA time zone name: use e.g. America/Sao_Paulo") from None
        return raw

    return _declare(default, Spec(env, default, "IANA zone", help, parse, override=override))


def _host(env: str, default: str, help: str) -> Any:
    def parse(raw: str) -> str:
        if not raw.strip() or any(c.isspace() for c in raw):
            raise ValueError(f"{env}={raw!r} is not a host name or address (default {default})")
        return raw.strip()

    return _declare(default, Spec(env, default, "host", help, parse))


def _optional_text(env: str, help: str, *, secret: bool = False, check: Callable[[str], str | None] | None = None,
                   default_text: str = "unset", unit: str = "") -> Any:
    def parse(raw: str) -> str:
        problem = check(raw) if check else None
        if problem:
            raise ValueError(f"{env} {problem}")
        return raw

    return _declare(None, Spec(env, default_text, unit, help, parse, secret=secret))


def _choice(env: str, default: str, choices: dict[str, str], help: str) -> Any:
    """One of a few words; ``choices`` maps each to what it means (shown in the help)."""
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"{env}={raw!r} is not one of {', '.join(choices)} (default {default})")
        return value

    meaning = "; ".join(f"`{word}`: {what}" for word, what in choices.items())
    return _declare(default, Spec(env, default, "", f"{help} ({meaning})", parse))


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(env: str, default: bool, help: str) -> Any:
    def parse(raw: str) -> bool:
        value = raw.strip().lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise ValueError(f"{env}={raw!r} is not true or false (default {str(default).lower()})")

    return _declare(default, Spec(env, str(default).lower(), "true/false", help, parse,
                                  render=lambda v: str(v).lower()))


def _identifier(env: str, default: str, help: str) -> Any:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not (value[:1].isascii() and value[:1].isalpha() and len(value) >= 2
                and all(c.isascii() and (c.isalnum() or c == "_") for c in value)):
            raise ValueError(f"{env}={raw!r} must start with a letter and hold only letters, digits and _ "
                             f"(Stays' internalName rule), e.g. {default}")
        return value

    return _declare(default, Spec(env, default, "name", help, parse))


def _notify_url_problem(raw: str) -> str | None:
    """HTTPS, or plain HTTP to this machine only (a local receiver: nothing crosses a network in clear)."""
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"={raw!r} is not an http(s) URL with a host: use e.g. https://automation.example.com/hooks/locks"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return (f"={raw!r} is plain http to another machine: the event can carry a door code, so use https:// "
                "(plain http is allowed to 127.0.0.1 / localhost only, for a local receiver)")
    return None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def notify_secret_problem(raw: str) -> str | None:
    """The Standard Webhooks form: ``whsec_`` and the base64 of 24 to 64 random bytes."""
    fix = "generate one with `lock-pipeline new-notify-secret` and give the same value to your receiver"
    if not raw.startswith("whsec_"):
        return f"must look like whsec_<base64> (Standard Webhooks): {fix}"
    try:
        key = base64.b64decode(raw[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        return f"is not whsec_ followed by base64: {fix}"
    if not 24 <= len(key) <= 64:
        return f"holds a {len(key)}-byte key; use 24 to 64 random bytes: {fix}"
    return None


def _whole_divisor_of_day(env: str, raw: str) -> int:
    if not raw.isdigit() or int(raw) not in (1, 2, 3, 4, 6, 8, 12, 24):
        raise ValueError(f"{env}={raw!r} must divide the day: 1, 2, 3, 4, 6, 8, 12 or 24 (default 12)")
    return int(raw)


def _is_pin_key(raw: str) -> str | None:
    if is_valid_pin_key(raw):
        return None
    return ("is not a Fernet key (32 bytes, url-safe base64): generate one with `lock-pipeline new-pin-key`; "
            "unset it on the embedded default to use the generated one")


def _is_database_url(raw: str) -> str | None:
    scheme = urlsplit(raw).scheme
    if scheme.split("+")[0] in {"postgresql", "postgres"}:
        return None
    return f"must be a postgresql:// URL (got scheme {scheme!r}); unset it to use the embedded Postgres"


def default_home() -> Path:
    """Where data lives when LOCK_PIPELINE_HOME is not set: ``./.lock_pipeline`` when run from a
    checkout of the project, else the user's data directory (never inside the installed package)."""
    here = Path.cwd()
    if (here / "pyproject.toml").is_file() and (here / "lock_pipeline" / "__init__.py").is_file():
        return here / ".lock_pipeline"
    from platformdirs import user_data_path

    return user_data_path("lock_pipeline", appauthor=False)


@dataclass(frozen=True)
class StaysSettings:
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class TuyaSettings:
    base_url: str
    access_id: str
    access_secret: str = field(repr=False)


# The credentials: read together (one account each), so they are declared as groups.
STAYS_SPECS = (
    Spec("STAYS_BASE_URL", "sandbox", "URL", "e.g. `https://<account>.stays.net/external/v1`", str),
    Spec("STAYS_CLIENT_ID", "sandbox", "", "the API login (Stays > App Center > API); webhooks must carry it", str),
    Spec("STAYS_CLIENT_SECRET", "sandbox", "", "the API password (Basic auth)", str, secret=True),
)
TUYA_SPECS = (
    Spec("TUYA_ACCESS_ID", "sandbox", "", "the cloud project's Access ID", str),
    Spec("TUYA_ACCESS_SECRET", "sandbox", "", "the cloud project's 32-character Access Secret", str, secret=True),
    Spec("TUYA_REGION", "sandbox", "", "data centre: " + ", ".join(TUYA_REGION_HOSTS), str),
    Spec("TUYA_BASE_URL", "from region", "URL", "override the host (https); a private CA through "
                                                "`SSL_CERT_FILE` / `REQUESTS_CA_BUNDLE`", str),
)


@dataclass(frozen=True)
class Settings:
    """The validated settings. ``Settings()`` is every default; :func:`load_settings` reads the environment."""

    home: Path = _declare(None, Spec(
        "LOCK_PIPELINE_HOME", "`./.lock_pipeline` in a checkout, else the user data directory "
        "(`~/.local/share/lock_pipeline` on Linux)", "directory",
        "data directory: embedded Postgres, Dagster home, the generated PIN key, sandbox lock state",
        lambda raw: Path(raw).expanduser(), render=str), factory=default_home)
    database_url: str | None = _optional_text(
        "LOCK_PIPELINE_DATABASE_URL", "`postgresql://user:password@host/db`; Dagster's runs and events live in the "
        "same database", secret=True, check=_is_database_url, default_text="embedded", unit="URL")
    pin_key: str | None = _optional_text(
        "LOCK_PIPELINE_PIN_KEY", "Fernet key encrypting PINs at rest; generated into the data directory on the "
        "embedded default, **required** with your own database", secret=True, check=_is_pin_key,
        default_text="generated")
    timezone: str = _zone("LOCK_PIPELINE_TIMEZONE", "America/Sao_Paulo",
                          "the account's zone: Stays dates are this wall clock unless a listing says otherwise",
                          override="lock-pipeline listing set CODE --time-zone ZONE")
    sync_days_back: int = _bounded_int("LOCK_PIPELINE_SYNC_DAYS_BACK", 30, 0, 3650, "days",
                                       "the sync window reaches this far into the past")
    sync_days_ahead: int = _bounded_int("LOCK_PIPELINE_SYNC_DAYS_AHEAD", 365, 1, 3650, "days",
                                        "and this far ahead")
    full_sync_hours: int = _declare(12, Spec(
        "LOCK_PIPELINE_FULL_SYNC_HOURS", "12", "hours",
        "how often the whole sync window is swept (the 30-minute sync reads only what can touch a door soon, and "
        "what was booked since; webhooks bring changes in seconds): 1, 2, 3, 4, 6, 8, 12 or 24",
        lambda raw: _whole_divisor_of_day("LOCK_PIPELINE_FULL_SYNC_HOURS", raw)))
    default_check_in: time = _clock_time("LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME", time(15, 0),
                                         "check-in time when Stays sends none",
                                         override="lock-pipeline listing set CODE --check-in-time HH:MM")
    default_check_out: time = _clock_time("LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME", time(11, 0),
                                          "check-out time when Stays sends none",
                                          override="lock-pipeline listing set CODE --check-out-time HH:MM")
    access_lead_minutes: int = _bounded_int("LOCK_PIPELINE_ACCESS_LEAD_MINUTES", 120, 0, 24 * 60, "minutes",
                                            "access opens this long before check-in",
                                            override="lock-pipeline listing set CODE --lead-minutes N")
    access_grace_minutes: int = _bounded_int("LOCK_PIPELINE_ACCESS_GRACE_MINUTES", 0, 0, 24 * 60, "minutes",
                                             "access ends this long after check-out",
                                             override="lock-pipeline listing set CODE --grace-minutes N")
    pin_length: int = _bounded_int("LOCK_PIPELINE_PIN_LENGTH", 7, 6, 8, "digits",
                                   "digits in a PIN on a lock with no length of its own: Wi-Fi locks take 7, "
                                   "Zigbee and Bluetooth locks 6",
                                   override="lock-pipeline lock set DEVICE_ID --pin-length N")
    backup_code_lead_minutes: int = _bounded_int(
        "LOCK_PIPELINE_BACKUP_CODE_LEAD_MINUTES", 180, 0, 24 * 60, "minutes",
        "when a stay's PIN is not on its lock this long before access opens (lock offline, storage full), an "
        "offline backup code is issued")
    battery_low_percent: int = _bounded_int("LOCK_PIPELINE_BATTERY_LOW_PERCENT", 20, 1, 99, "percent",
                                            "a lock at or below this (or reporting `low`) is listed when a guest "
                                            "arrives within 7 days")
    program_ahead_hours: int = _bounded_int("LOCK_PIPELINE_PROGRAM_AHEAD_HOURS", 48, 1, 24 * 30, "hours",
                                            "how early a PIN is programmed, so a sleeping lock has time to receive it")
    missing_tolerance_hours: int = _bounded_int("LOCK_PIPELINE_MISSING_TOLERANCE_HOURS", 24, 1, 24 * 30, "hours",
                                                "how long a stay may be absent from the Stays feed before its PIN "
                                                "is revoked")
    match_auto_confirm_score: float = _bounded_number("LOCK_PIPELINE_MATCH_AUTO_CONFIRM_SCORE", 92.0, 0, 100,
                                                      "auto-confirm a suggested lock only at or above this score")
    match_min_margin: float = _bounded_number("LOCK_PIPELINE_MATCH_MIN_MARGIN", 8.0, 0, 100,
                                              "... and only this far ahead of the runner-up")
    max_actions_per_run: int = _bounded_int("LOCK_PIPELINE_MAX_ACTIONS_PER_RUN", 100, 1, 500, "actions",
                                            "in a burst (more than 10 due PIN actions), at most this many per run")
    ui_host: str = _host("LOCK_PIPELINE_UI_HOST", "127.0.0.1", "where the Dagster UI listens (loopback by default: "
                                                               "the open-source UI has no login)")
    ui_port: int = _bounded_int("LOCK_PIPELINE_UI_PORT", 3000, 1, 65535, "port", "the Dagster UI's port")
    code_server_host: str = _host("LOCK_PIPELINE_CODE_SERVER_HOST", "127.0.0.1",
                                  "where the webserver and the daemon reach the code location's gRPC server "
                                  "(production layout; `lock-pipeline migrate` writes it into workspace.yaml)")
    code_server_port: int = _bounded_int("LOCK_PIPELINE_CODE_SERVER_PORT", 4000, 1, 65535, "port",
                                         "the code location's gRPC port (production layout)")
    webhook_host: str = _host("LOCK_PIPELINE_WEBHOOK_HOST", "127.0.0.1",
                              "where the Stays webhook receiver listens (put a TLS reverse proxy in front of it)")
    webhook_port: int = _bounded_int("LOCK_PIPELINE_WEBHOOK_PORT", 3001, 1, 65535, "port",
                                     "the Stays webhook receiver's port")
    webhook_token: str | None = _optional_text(
        "LOCK_PIPELINE_WEBHOOK_TOKEN", "the secret in the webhook URL (`/stays/webhooks/{token}`); generated into the "
        "data directory on the embedded default, **required** with your own database (at least 32 characters)",
        secret=True, check=lambda raw: None if len(raw) >= 32 and raw.isascii() and raw.replace("-", "").replace(
            "_", "").isalnum() else "must be at least 32 URL-safe characters: generate one with "
                                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
        default_text="generated")
    webhook_public_url: str | None = _optional_text(
        "LOCK_PIPELINE_WEBHOOK_PUBLIC_URL", "the base URL at which Stays reaches the receiver through your proxy, e.g. "
        "`https://locks.example.com`; `lock-pipeline webhooks --print-url` builds the URL to register on it",
        check=lambda raw: (problem := _http_url_problem(raw)) and f"{problem}: use e.g. https://locks.example.com",
        unit="URL")
    stays_write_back: str = _choice(
        "LOCK_PIPELINE_STAYS_WRITE_BACK", "off", {"off": "nothing is written to Stays",
                                                  "pin": "the door code is written to a custom field of the reservation "
                                                         "(the code then lives in Stays too)"},
        "write the guest's door code back to the Stays reservation, where your guest messaging reads it")
    stays_pin_field: str = _identifier(
        "LOCK_PIPELINE_STAYS_PIN_FIELD", "door_code",
        "the reservation custom field (its internalName) that write-back fills; created as a text field if missing")
    notify_url: str | None = _optional_text(
        "LOCK_PIPELINE_NOTIFY_URL", "POST a signed event (Standard Webhooks) for each code event to this URL: your "
        "automation (n8n, Zapier, a WhatsApp tool) verifies it with LOCK_PIPELINE_NOTIFY_SECRET; https only, plain "
        "http to 127.0.0.1 only", check=lambda raw: (problem := _notify_url_problem(raw)) and problem.lstrip("="),
        unit="URL")
    notify_secret: str | None = _optional_text(
        "LOCK_PIPELINE_NOTIFY_SECRET", "the signing secret the events are signed with, `whsec_<base64>` "
        "(`lock-pipeline new-notify-secret` makes one); required with LOCK_PIPELINE_NOTIFY_URL", secret=True,
        check=notify_secret_problem)
    notify_include_pin: bool = _flag(
        "LOCK_PIPELINE_NOTIFY_INCLUDE_PIN", False,
        "put the door code itself in the events' body; otherwise an event says the code is ready and where to read "
        "it (`lock-pipeline pin show`, or the Stays field when write-back is on)")
    stays_sandbox_port: int = _bounded_int("LOCK_PIPELINE_STAYS_SANDBOX_PORT", 0, 0, 65535, "port",
                                           "the Stays sandbox's port on the embedded default (0: any free port)")
    tuya_sandbox_port: int = _bounded_int("LOCK_PIPELINE_TUYA_SANDBOX_PORT", 0, 0, 65535, "port",
                                          "the Tuya sandbox's port on the embedded default (0: any free port)")
    stays: StaysSettings | None = None
    tuya: TuyaSettings | None = None

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def dagster_home(self) -> Path:
        """Dagster's instance directory (dagster.yaml, workspace.yaml, compute logs): under the data directory."""
        return self.home / "dagster"

    @property
    def delivery_channels(self) -> tuple[str, ...]:
        """The channels a code event goes to (vocabulary.DeliveryChannel values), in a fixed order."""
        channels = []
        if self.stays_write_back == "pin":
            channels.append(DeliveryChannel.STAYS_FIELD.value)
        if self.notify_url:
            channels.append(DeliveryChannel.NOTIFY.value)
        return tuple(channels)

    @property
    def access_lead(self) -> timedelta:
        return timedelta(minutes=self.access_lead_minutes)

    @property
    def access_grace(self) -> timedelta:
        return timedelta(minutes=self.access_grace_minutes)

    @property
    def backup_code_lead(self) -> timedelta:
        return timedelta(minutes=self.backup_code_lead_minutes)

    @property
    def program_ahead(self) -> timedelta:
        return timedelta(hours=self.program_ahead_hours)

    @property
    def missing_tolerance(self) -> timedelta:
        return timedelta(hours=self.missing_tolerance_hours)

    def environment(self, *, include_secrets: bool = False) -> dict[str, str]:
        """The settings as environment variables.

        Without secrets: what the Dagster settings resource carries (shown in the UI). With them: the
        whole environment a service needs, database URL, PIN key and the Stays and Tuya credentials.
        """
        out = {spec.env: spec.render(value) for spec, value in _declared(self)
               if value is not None and (include_secrets or not spec.secret)}
        if include_secrets:
            for specs, group in ((STAYS_SPECS, self.stays), (TUYA_SPECS, self.tuya)):
                if group is not None:
                    out.update({s.env: v for s, v in zip(specs, _group_values(group)) if v})
        return out


DEFAULTS = Settings()


def setting_specs() -> list[Spec]:
    """Every environment variable the pipeline reads, in the README's order."""
    return [f.metadata["spec"] for f in fields(Settings) if "spec" in f.metadata] + [*STAYS_SPECS, *TUYA_SPECS]


def load_settings(environ: Mapping[str, str] | None = None, *, secrets_withheld: bool = False) -> Settings:
    """Read every setting; raise :class:`SettingsError` naming each wrong one.

    ``secrets_withheld``: ``environ`` is :meth:`Settings.environment` without secrets (what the
    Dagster settings resource carries), so a secret's absence is not a problem there.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    values: dict[str, Any] = {}
    for item in fields(Settings):
        spec: Spec | None = item.metadata.get("spec")
        raw = env.get(spec.env) if spec else None
        if spec is None or raw in (None, ""):
            continue
        try:
            values[item.name] = spec.parse(raw)
        except ValueError as problem:
            problems.append(str(problem))
    home = values.get("home")
    if home is not None and home.exists() and not home.is_dir():
        problems.append(f"LOCK_PIPELINE_HOME={home} is a file: point it at a directory (it is created if missing)")
    problems += _delivery_problems(values, env, secrets_withheld)
    values["stays"] = _stays_settings(env, problems)
    values["tuya"] = _tuya_settings(env, problems)
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def one_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting's value, for a command-line default; unset or invalid gives the declared default
    (the command then reports an invalid one through :func:`load_settings`)."""
    env = os.environ if environ is None else environ
    item = next(f for f in fields(Settings) if f.name == name)
    raw = env.get(item.metadata["spec"].env)
    if raw:
        try:
            return item.metadata["spec"].parse(raw)
        except ValueError:
            pass
    return getattr(DEFAULTS, name)


def is_valid_pin_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def _declared(settings: Settings) -> Iterator[tuple[Spec, Any]]:
    for item in fields(Settings):
        if "spec" in item.metadata:
            yield item.metadata["spec"], getattr(settings, item.name)


def _delivery_problems(values: Mapping[str, Any], env: Mapping[str, str], secrets_withheld: bool) -> list[str]:
    if values.get("notify_url") and not env.get("LOCK_PIPELINE_NOTIFY_SECRET") and not secrets_withheld:
        return ["LOCK_PIPELINE_NOTIFY_URL is set but LOCK_PIPELINE_NOTIFY_SECRET is not: events are always signed; "
                "generate a secret with `lock-pipeline new-notify-secret` and give it to your receiver too"]
    if env.get("LOCK_PIPELINE_NOTIFY_SECRET") and not env.get("LOCK_PIPELINE_NOTIFY_URL"):
        return ["LOCK_PIPELINE_NOTIFY_SECRET is set but LOCK_PIPELINE_NOTIFY_URL is not: set the URL your "
                "automation receives the events at, or unset the secret"]
    return []


def _group_values(group: StaysSettings | TuyaSettings) -> tuple[str, ...]:
    if isinstance(group, StaysSettings):
        return group.base_url, group.client_id, group.client_secret
    return group.access_id, group.access_secret, "", group.base_url


def _stays_settings(env: Mapping[str, str], problems: list[str]) -> StaysSettings | None:
    base_url = env.get("STAYS_BASE_URL") or None
    client_id = env.get("STAYS_CLIENT_ID") or None
    client_secret = env.get("STAYS_CLIENT_SECRET") or None
    if base_url is None:
        if client_id or client_secret:
            problems.append("STAYS_CLIENT_ID/STAYS_CLIENT_SECRET are set but STAYS_BASE_URL is not: "
                            "set it to https://<account>.stays.net/external/v1")
        return None
    url_problem = _http_url_problem(base_url)
    if url_problem:
        problems.append(f"STAYS_BASE_URL={base_url!r} {url_problem}: use https://<account>.stays.net/external/v1")
    if not client_id:
        problems.append("STAYS_CLIENT_ID is missing: copy the client id from Stays > App Center > API")
    if not client_secret:
        problems.append("STAYS_CLIENT_SECRET is missing: copy the client secret from Stays > App Center > API")
    return StaysSettings(base_url.rstrip("/"), client_id or "", client_secret or "")


def _tuya_settings(env: Mapping[str, str], problems: list[str]) -> TuyaSettings | None:
    access_id = env.get("TUYA_ACCESS_ID") or None
    secret = env.get("TUYA_ACCESS_SECRET") or None
    region = env.get("TUYA_REGION") or None
    base_url = env.get("TUYA_BASE_URL") or None
    if not (access_id or secret or region or base_url):
        return None
    if region and region not in TUYA_REGION_HOSTS:
        problems.append(f"TUYA_REGION={region!r} is unknown: use one of {', '.join(TUYA_REGION_HOSTS)}")
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            problems.append(f"TUYA_BASE_URL={base_url!r} must be an https:// URL with a host")
    elif not region:
        problems.append("TUYA_REGION (or TUYA_BASE_URL) is missing: the data centre of your Tuya cloud project, e.g. us")
    if not access_id:
        problems.append("TUYA_ACCESS_ID is missing: the Access ID of your Tuya cloud project")
    if not secret:
        problems.append("TUYA_ACCESS_SECRET is missing: the Access Secret of your Tuya cloud project")
    elif len(secret.encode("utf-8")) != 32:
        problems.append("TUYA_ACCESS_SECRET must be the project's 32-character Access Secret")
    resolved = base_url or f"https://{TUYA_REGION_HOSTS.get(region or '', 'openapi.tuyaus.com')}"
    return TuyaSettings(resolved.rstrip("/"), access_id or "", secret or "")


def _http_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return "is not an http(s) URL"
    if not parts.hostname:
        return "has no host"
    return None


# ---------------------------------------------------------------- cadences and horizons
# Not environment settings: fixed facts the code and the SQL views share. The views read them
# from pipeline.settings (published by storage.migrations), never as literals of their own.

SYNC_INTERVAL = timedelta(minutes=30)                   # the sync schedule's cadence
UNMAPPED_LISTING_WITHIN = timedelta(days=14)            # a listing with arrivals this soon needs a lock
PIN_NOT_ON_LOCK_WITHIN = timedelta(hours=12)            # a PIN still not on its lock this close to access
LOCK_OFFLINE_ARRIVAL_WITHIN = timedelta(hours=24)       # an offline lock with an arrival this soon ...
LOCK_OFFLINE_ARRIVED_WITHIN = timedelta(hours=2)        # ... or one that arrived this recently
RUN_FAILED_WITHIN = timedelta(hours=24)                 # failed runs listed for this long
SYNC_STALE_AFTER = timedelta(hours=1)                   # no successful sync for this long
WEBHOOKS_SILENT_AFTER = timedelta(hours=2)              # no webhook for this long while the syncs find changes
BATTERY_ARRIVAL_WITHIN = timedelta(days=7)              # a low battery matters with a guest arriving this soon
CODE_NOT_DELIVERED_WITHIN = timedelta(hours=24)         # a guest arriving this soon whose code went nowhere ...
CODE_NOT_DELIVERED_GRACE = timedelta(minutes=15)        # ... this long after the lock took it (delivery takes seconds)


def published_settings(settings: Settings) -> dict[str, tuple[str, str]]:
    """What the views may read: name -> (value as text, unit). Intervals are Postgres interval text."""
    published = {
        "sync.interval": (interval_text(SYNC_INTERVAL), "interval"),
        "attention.unmapped_listing_within": (interval_text(UNMAPPED_LISTING_WITHIN), "interval"),
        "attention.pin_not_on_lock_within": (interval_text(PIN_NOT_ON_LOCK_WITHIN), "interval"),
        "attention.lock_offline_arrival_within": (interval_text(LOCK_OFFLINE_ARRIVAL_WITHIN), "interval"),
        "attention.lock_offline_arrived_within": (interval_text(LOCK_OFFLINE_ARRIVED_WITHIN), "interval"),
        "attention.run_failed_within": (interval_text(RUN_FAILED_WITHIN), "interval"),
        "attention.sync_stale_after": (interval_text(SYNC_STALE_AFTER), "interval"),
        "attention.webhooks_silent_after": (interval_text(WEBHOOKS_SILENT_AFTER), "interval"),
        "attention.battery_arrival_within": (interval_text(BATTERY_ARRIVAL_WITHIN), "interval"),
        "attention.code_not_delivered_within": (interval_text(CODE_NOT_DELIVERED_WITHIN), "interval"),
        "attention.code_not_delivered_grace": (interval_text(CODE_NOT_DELIVERED_GRACE), "interval"),
        "delivery.channels": (",".join(settings.delivery_channels), "list"),
    }
    for spec, value in _declared(settings):
        if not spec.secret and value is not None:
            published[spec.env] = (spec.render(value), spec.unit)
    for spec, value in _declared(DEFAULTS):  # a listing's or lock's setting shows whether the account changed it
        if spec.override:
            published[f"default.{spec.env}"] = (spec.render(value), spec.unit)
    return published


def interval_text(delta: timedelta) -> str:
    """'30 minutes', '24 hours', '14 days': what Postgres reads as an interval and a person reads as text."""
    seconds = int(delta.total_seconds())
    for unit, size, smallest in (("day", 86400, 2 * 86400), ("hour", 3600, 3600), ("minute", 60, 60), ("second", 1, 1)):
        if seconds % size == 0 and seconds >= smallest:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "0 seconds"
