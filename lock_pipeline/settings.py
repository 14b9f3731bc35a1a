"""Settings from the environment, read and validated once at start.

Every problem is collected and reported together, each naming the variable and the fix,
so a wrong deployment stops at start instead of failing on the first run.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

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
class StaysSettings:
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class TuyaSettings:
    base_url: str
    access_id: str
    access_secret: str = field(repr=False)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    timezone: str
    stays: StaysSettings | None
    tuya: TuyaSettings | None
    pin_key: str | None = field(repr=False)
    sync_days_back: int = 30
    sync_days_ahead: int = 365
    default_check_in: time = time(15, 0)
    default_check_out: time = time(11, 0)
    access_lead_minutes: int = 120
    access_grace_minutes: int = 0
    program_ahead_hours: int = 48
    missing_tolerance_hours: int = 24
    match_auto_confirm_score: float = 92.0
    match_min_margin: float = 8.0
    max_actions_per_run: int = 100

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting; raise :class:`SettingsError` naming each wrong one."""
    env = os.environ if environ is None else environ
    problems: list[str] = []
    reader = _Reader(env, problems)

    home = Path(env.get("LOCK_PIPELINE_HOME") or PROJECT_ROOT / ".lock_pipeline").expanduser()
    if home.exists() and not home.is_dir():
        problems.append(f"LOCK_PIPELINE_HOME={home} is a file: point it at a directory (it is created if missing)")

    database_url = env.get("LOCK_PIPELINE_DATABASE_URL") or None
    if database_url is not None:
        scheme = urlsplit(database_url).scheme
        if scheme.split("+")[0] not in {"postgresql", "postgres"}:
            problems.append(
                "LOCK_PIPELINE_DATABASE_URL must be a postgresql:// URL "
                f"(got scheme {scheme!r}); unset it to use the embedded Postgres"
            )

    tz_name = env.get("LOCK_PIPELINE_TIMEZONE") or "America/Sao_Paulo"
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"LOCK_PIPELINE_TIMEZONE={tz_name!r} is not an IANA time zone name: use e.g. America/Sao_Paulo"
        )

    stays = _stays_settings(env, problems)
    tuya = _tuya_settings(env, problems)

    pin_key = env.get("LOCK_PIPELINE_PIN_KEY") or None
    if pin_key is not None and not is_valid_pin_key(pin_key):
        problems.append(
            "LOCK_PIPELINE_PIN_KEY is not a Fernet key (32 bytes, url-safe base64): generate one with "
            "`lock-pipeline new-pin-key`; unset it on the embedded default to use the generated one"
        )

    settings = Settings(
        home=home,
        database_url=database_url,
        timezone=tz_name,
        stays=stays,
        tuya=tuya,
        pin_key=pin_key,
        sync_days_back=reader.integer("LOCK_PIPELINE_SYNC_DAYS_BACK", 30, minimum=0, maximum=3650),
        sync_days_ahead=reader.integer("LOCK_PIPELINE_SYNC_DAYS_AHEAD", 365, minimum=1, maximum=3650),
        default_check_in=reader.clock_time("LOCK_PIPELINE_DEFAULT_CHECK_IN_TIME", time(15, 0)),
        default_check_out=reader.clock_time("LOCK_PIPELINE_DEFAULT_CHECK_OUT_TIME", time(11, 0)),
        access_lead_minutes=reader.integer("LOCK_PIPELINE_ACCESS_LEAD_MINUTES", 120, minimum=0, maximum=24 * 60),
        access_grace_minutes=reader.integer("LOCK_PIPELINE_ACCESS_GRACE_MINUTES", 0, minimum=0, maximum=24 * 60),
        program_ahead_hours=reader.integer("LOCK_PIPELINE_PROGRAM_AHEAD_HOURS", 48, minimum=1, maximum=24 * 30),
        missing_tolerance_hours=reader.integer("LOCK_PIPELINE_MISSING_TOLERANCE_HOURS", 24, minimum=1, maximum=24 * 30),
        match_auto_confirm_score=reader.number("LOCK_PIPELINE_MATCH_AUTO_CONFIRM_SCORE", 92.0, minimum=0, maximum=100),
        match_min_margin=reader.number("LOCK_PIPELINE_MATCH_MIN_MARGIN", 8.0, minimum=0, maximum=100),
        max_actions_per_run=reader.integer("LOCK_PIPELINE_MAX_ACTIONS_PER_RUN", 100, minimum=1, maximum=500),
    )
    if problems:
        raise SettingsError(problems)
    return settings


def is_valid_pin_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


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


class _Reader:
    def __init__(self, env: Mapping[str, str], problems: list[str]) -> None:
        self.env = env
        self.problems = problems

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self.env.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number (default {default})")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name}={value} is out of range: use {minimum}..{maximum} (default {default})")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self.env.get(name)
        if raw in (None, ""):
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number (default {default})")
            return default
        if not minimum <= value <= maximum:
            self.problems.append(f"{name}={value} is out of range: use {minimum}..{maximum} (default {default})")
            return default
        return value

    def clock_time(self, name: str, default: time) -> time:
        raw = self.env.get(name)
        if raw in (None, ""):
            return default
        try:
            return time.fromisoformat(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a time of day: use HH:MM, e.g. {default:%H:%M}")
            return default
