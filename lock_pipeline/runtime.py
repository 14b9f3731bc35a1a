"""Start-up of the whole pipeline: database, schema, sandboxes, PIN key, Dagster's home.

Used by ``lock-pipeline up`` (the embedded default) and by the commands that need the
database; every problem stops the start with a message that says what to fix.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from lock_pipeline.package_files import template_path, template_text
from lock_pipeline.settings import Settings, SettingsError, is_valid_pin_key
from lock_pipeline.storage.database import engine_for, redacted, sqlalchemy_url
from lock_pipeline.storage.embedded import EmbeddedPostgres
from lock_pipeline.storage.migrations import apply_migrations


@dataclass
class Runtime:
    """What ``up`` started, and the environment Dagster's processes must inherit."""

    settings: Settings
    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stack: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        self.stack.close()


def open_database(settings: Settings, stack: ExitStack) -> str:
    """The pipeline database URL: the configured server, or the embedded one (started here)."""
    if settings.database_url:
        return settings.database_url
    settings.home.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(settings.home)
    url = server.start()
    stack.callback(server.stop)
    return url


def prepare(settings: Settings, *, with_sandboxes: bool = True) -> Runtime:
    runtime = Runtime(settings=settings, database_url="")
    try:
        runtime.database_url = open_database(settings, runtime.stack)
        applied = apply_migrations(engine_for(runtime.database_url), settings)
        if applied:
            runtime.notes.append(f"schema migrated: applied {applied}")
        key = pin_key(settings)
        check_pin_key(engine_for(runtime.database_url), key)
        runtime.env.update({
            "LOCK_PIPELINE_HOME": str(settings.home),
            "LOCK_PIPELINE_DATABASE_URL": runtime.database_url,
            "LOCK_PIPELINE_DAGSTER_STORAGE_URL": sqlalchemy_url(runtime.database_url),
            "LOCK_PIPELINE_PIN_KEY": key,
        })
        runtime.notes.append(f"Postgres: {redacted(runtime.database_url)}")
        if with_sandboxes:
            runtime.env["LOCK_PIPELINE_WEBHOOK_TOKEN"] = webhook_token(settings)
            _start_sandboxes(runtime)
            _start_receiver(runtime)
        return runtime
    except BaseException:
        runtime.close()
        raise


def service_environment(settings: Settings, database_url: str, key: str,
                        environ: Mapping[str, str] | None = None, *, webhook_token: str | None = None) -> dict[str, str]:
    """Every variable the production services read, so nobody has to know their names.

    ``environ`` (the command's own environment) brings the CA variables along: a private CA for the Tuya
    host (TUYA_BASE_URL) given when the file is made must reach the runs too, or every Tuya call fails its
    certificate check in the services while the command that wrote the file knew the CA."""
    from lock_pipeline.tuya.client import CA_VARIABLES

    env = {name: environ[name] for name in CA_VARIABLES if environ and environ.get(name)}
    env.update(settings.environment(include_secrets=True))
    env.update({
        "LOCK_PIPELINE_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "LOCK_PIPELINE_DATABASE_URL": database_url,
        "LOCK_PIPELINE_DAGSTER_STORAGE_URL": sqlalchemy_url(database_url),
        "LOCK_PIPELINE_PIN_KEY": key,
    })
    if webhook_token:  # the receiver's secret (generated into the data directory on the embedded default)
        env["LOCK_PIPELINE_WEBHOOK_TOKEN"] = webhook_token
    return dict(sorted(env.items()))


def check_pin_key(engine, key: str) -> None:
    """Stop the start when the key cannot read the PINs already stored (a changed or mistyped key
    would otherwise fail every PIN run on a lock that holds another PIN, and every `pin show`)."""
    from lock_pipeline.access.pins import PinKeyError, PinVault
    from lock_pipeline.access.store import latest_pin_ciphertext

    with engine.connect() as conn:
        stored = latest_pin_ciphertext(conn)
    if stored is None:
        return
    try:
        PinVault(key).decrypt(stored)
    except PinKeyError:
        raise SettingsError([
            "LOCK_PIPELINE_PIN_KEY does not decrypt the PINs already stored in the database: set it back to the key "
            "they were stored with (on the embedded default, the pin.key file in LOCK_PIPELINE_HOME)"
        ]) from None


def pin_key(settings: Settings) -> str:
    """The PIN encryption key: the setting, or on the embedded default one generated once."""
    from cryptography.fernet import Fernet

    return _secret(settings, settings.pin_key, "pin.key", lambda: Fernet.generate_key().decode(), is_valid_pin_key,
                   "LOCK_PIPELINE_PIN_KEY is missing: with your own database the PIN key must come from the "
                   "environment (generate one with `lock-pipeline new-pin-key` and keep it in your secret store)",
                   "PINs stored with it cannot be read otherwise")


def webhook_token(settings: Settings) -> str:
    """The secret in the webhook URL: the setting, or on the embedded default one generated once."""
    return _secret(settings, settings.webhook_token, "webhook.token", lambda: secrets.token_urlsafe(32),
                   lambda token: len(token) >= 32,
                   "LOCK_PIPELINE_WEBHOOK_TOKEN is missing: with your own database set it to a long random string "
                   "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), then register the URL "
                   "`lock-pipeline webhooks --print-url` shows in Stays",
                   "or delete it to get a new one, then register the new URL in Stays")


def _secret(settings: Settings, configured: str | None, filename: str, make, valid, missing: str, lost: str) -> str:
    """A secret from its setting; on the embedded default, generated once into the data directory (mode 600)."""
    if configured:
        return configured
    if not settings.uses_embedded_database:
        raise SettingsError([missing])
    path = settings.home / filename
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        _write_private(path, make())
    value = path.read_text().strip()
    if not valid(value):
        raise SettingsError([f"{path} does not hold a valid secret: restore it from backup ({lost})"])
    return value


def _start_receiver(runtime: Runtime) -> None:
    """The Stays webhook receiver on loopback, in this process (production runs `lock-pipeline webhooks`)."""
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.stays.receiver import BackgroundReceiver

    settings = runtime.settings
    client_id = runtime.env.get("STAYS_CLIENT_ID") or (settings.stays.client_id if settings.stays else "")
    receiver = BackgroundReceiver(engine_for(runtime.database_url), host=settings.webhook_host,
                                  port=settings.webhook_port, token=runtime.env["LOCK_PIPELINE_WEBHOOK_TOKEN"],
                                  client_id=client_id, now=clock_from_environment().now).start()
    runtime.stack.callback(receiver.stop)
    runtime.notes.append(f"Stays webhook receiver: http://{settings.webhook_host}:{settings.webhook_port}"
                         "/stays/webhooks/<token> (`lock-pipeline webhooks --print-url`)")


SANDBOX_FILE = "sandbox.json"  # where the commands find the running sandboxes (mode 600, gone when they stop)


def running_sandbox(settings: Settings, which: str) -> dict:
    """How to reach the embedded default's running Stays or Tuya sandbox (`lock-pipeline up`)."""
    found = settings.home / SANDBOX_FILE
    sandboxes = json.loads(found.read_text()) if found.exists() else {}
    if which not in sandboxes:
        raise SettingsError([f"no running {which.title()} sandbox for {settings.home}: start the embedded default with "
                             "`lock-pipeline up` (the sandboxes exist only while it runs)"
                             + (", or set TUYA_ACCESS_ID, TUYA_ACCESS_SECRET and TUYA_REGION" if which == "tuya" else "")])
    return sandboxes[which]


def tuya_client(settings: Settings):
    """A Tuya client for an operator command: the configured cloud, else the running sandbox."""
    from lock_pipeline.tuya.client import TuyaClient

    if settings.tuya is not None:
        return TuyaClient(settings.tuya.base_url, settings.tuya.access_id, settings.tuya.access_secret)
    sandbox = running_sandbox(settings, "tuya")
    return TuyaClient(sandbox["base_url"], sandbox["access_id"], sandbox["access_secret"], verify=sandbox["ca_cert_path"])


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def dagster_home(settings: Settings, *, for_services: bool = False) -> Path:
    """Dagster's instance directory under the data directory: the project's dagster.yaml, and for the
    production layout a workspace.yaml that finds the code location at its gRPC server."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template_path("dagster.yaml"), home / "dagster.yaml")
    if for_services:
        workspace = template_text("workspace.grpc.yaml").format(host=settings.code_server_host,
                                                                port=settings.code_server_port)
        (home / "workspace.yaml").write_text(workspace, encoding="utf-8")
    return home


def _start_sandboxes(runtime: Runtime) -> None:
    settings = runtime.settings
    if settings.stays is not None and settings.tuya is not None:
        return
    from lock_pipeline.clock import clock_from_environment
    from lock_pipeline.sandbox.seed import build_seed

    seed = build_seed(clock_from_environment().now(), timezone=settings.timezone)
    found: dict[str, dict] = {}  # what `lock-pipeline sandbox ...` and `backup-code` need to reach them
    if settings.stays is None:
        from lock_pipeline.sandbox.stays_server import StaysSandbox

        from lock_pipeline.stays.receiver import webhook_url

        client_id, client_secret = "sandbox-client", secrets.token_urlsafe(18)
        # As the real Stays does, the sandbox POSTs each change to the URL registered with it: the receiver
        # `lock-pipeline up` starts on loopback.
        receiver = webhook_url(f"http://{settings.webhook_host}:{settings.webhook_port}",
                               runtime.env["LOCK_PIPELINE_WEBHOOK_TOKEN"])
        stays = StaysSandbox(seed, client_id=client_id, client_secret=client_secret,
                             port=settings.stays_sandbox_port, webhook_url=receiver).start()
        runtime.stack.callback(stays.stop)
        runtime.env.update({
            "STAYS_BASE_URL": stays.base_url,
            "STAYS_CLIENT_ID": client_id,
            "STAYS_CLIENT_SECRET": client_secret,
        })
        found["stays"] = {"admin_url": stays.admin_url, "base_url": stays.base_url, "client_id": client_id,
                          "client_secret": client_secret}
        runtime.notes.append(f"Stays sandbox: {stays.base_url} ({len(seed.listings)} listings, {len(seed.reservations)} "
                             "stays; its webhooks go to the receiver)")
    if settings.tuya is None:
        from lock_pipeline.sandbox.tuya_cloud import TuyaSandbox

        tuya = TuyaSandbox(
            seed.locks, clock=clock_from_environment(),
            port=settings.tuya_sandbox_port,
            state_file=settings.home / "tuya_sandbox_state.json",
        ).start()
        runtime.stack.callback(tuya.stop)
        runtime.env.update({
            "TUYA_BASE_URL": tuya.base_url,
            "TUYA_ACCESS_ID": tuya.access_id,
            "TUYA_ACCESS_SECRET": tuya.access_secret,
            # The usual variable for a private CA; the Tuya client honours it, httpx's Stays client does not read it.
            "REQUESTS_CA_BUNDLE": tuya.ca_cert_path,
        })
        found["tuya"] = {"base_url": tuya.base_url, "access_id": tuya.access_id, "access_secret": tuya.access_secret,
                         "ca_cert_path": tuya.ca_cert_path}
        runtime.notes.append(f"Tuya sandbox: {tuya.base_url} ({len(seed.locks)} locks)")
    sandbox_file = settings.home / SANDBOX_FILE
    _write_private(sandbox_file, json.dumps(found))
    runtime.stack.callback(sandbox_file.unlink, missing_ok=True)
