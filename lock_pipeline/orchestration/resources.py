"""Resources: small ConfigurableResources, each with a real implementation behind it.

Secrets are passed as ``EnvVar`` so the Dagster UI shows the variable's name, never its value.
"""


from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr
from sqlalchemy import Engine

from lock_pipeline.clock import Clock, FileClock, SystemClock
from lock_pipeline.storage.database import engine_for
from lock_pipeline.storage.migrations import check_schema

if TYPE_CHECKING:
    from lock_pipeline.access.pins import PinVault
    from lock_pipeline.access.planning import AccessPolicy
    from lock_pipeline.settings import Settings
    from lock_pipeline.stays.client import StaysClient
    from lock_pipeline.tuya.client import TuyaClient


class PostgresResource(ConfigurableResource):
    """The pipeline's Postgres; refuses to run on a schema version it does not know."""

    url: str

    _checked: bool = PrivateAttr(default=False)

    @property
    def engine(self) -> Engine:
        engine = engine_for(self.url)
        if not self._checked:
            check_schema(engine)
            self._checked = True
        return engine


class ClockResource(ConfigurableResource):
    """The one clock. ``frozen_at`` (ISO instant) or ``clock_file`` move time for tests and simulations."""

    frozen_at: str | None = None
    clock_file: str | None = None

    def get_clock(self) -> Clock:
        if self.frozen_at:
            return _FrozenClock(datetime.fromisoformat(self.frozen_at))
        if self.clock_file:
            return FileClock(Path(self.clock_file))
        return SystemClock()

    def now(self) -> datetime:
        return self.get_clock().now()


class _FrozenClock:
    def __init__(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError(f"frozen_at {instant.isoformat()} has no offset")
        self._instant = instant

    def now(self) -> datetime:
        return self._instant


class StaysResource(ConfigurableResource):
    """The Stays External API (the real one, or the sandbox by base URL)."""

    base_url: str
    client_id: str
    client_secret: str
    timeout_seconds: float = 15.0
    max_attempts: int = 3
    backoff_seconds: float = 0.5
    concurrency: int = 4

    @contextmanager
    def client(self) -> Iterator["StaysClient"]:
        from lock_pipeline.stays.client import StaysClient

        client = StaysClient(
            self.base_url, self.client_id, self.client_secret, timeout=self.timeout_seconds,
            max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds, concurrency=self.concurrency,
        )
        try:
            yield client
        finally:
            client.close()


class TuyaResource(ConfigurableResource):
    """The Tuya cloud (a region host, or the sandbox by base URL); ``ca_bundle`` for a private CA.

    Inside a run, :meth:`client` hands every step the same ``TuyaClient``: one access token for
    the whole run instead of a token grant per step (a burst's PINs are steps of a few runs, and
    the cloud's rate limit counts token calls too). The client renews its token before expiry and
    on a 1010 answer, and is closed when the run ends (``teardown_after_execution``). With
    ``token_database_url`` and ``token_key`` (the deployment sets both) the runs share one token
    through Postgres (tuya/token_store.py), so token calls no longer grow with the runs. Outside a
    run (scripts, tests calling the resource directly) each ``with client()`` block builds and
    closes its own client.
    """

    base_url: str
    access_id: str
    access_secret: str
    ca_bundle: str | None = None
    token_database_url: str | None = Field(default=None, description="share one token across runs in this database")
    token_key: str | None = Field(default=None, description="the key the shared token is encrypted with")
    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff_seconds: float = 0.5

    _run_scoped: bool = PrivateAttr(default=False)
    _shared: "TuyaClient | None" = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Dagster calls this on the run's own copy of the resource; the client is built on first use.
        self._run_scoped = True

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        shared, self._shared, self._run_scoped = self._shared, None, False
        if shared is not None:
            shared.close()

    @contextmanager
    def client(self) -> Iterator["TuyaClient"]:
        if self._run_scoped:
            if self._shared is None:
                self._shared = self._new_client()
            yield self._shared  # closed at the run's end, not here
            return
        client = self._new_client()
        try:
            yield client
        finally:
            client.close()

    def _new_client(self) -> "TuyaClient":
        from lock_pipeline.tuya.client import TuyaClient

        store = None
        if self.token_database_url and self.token_key:
            from lock_pipeline.tuya.token_store import PostgresTokenStore

            store = PostgresTokenStore(engine_for(self.token_database_url), self.access_id, self.token_key)
        return TuyaClient(
            self.base_url, self.access_id, self.access_secret, timeout=self.timeout_seconds,
            max_attempts=self.max_attempts, backoff_seconds=self.backoff_seconds,
            verify=self.ca_bundle or True, token_store=store,
        )


class SettingsResource(ConfigurableResource):
    """The pipeline's settings (lock_pipeline/settings.py), as the environment names them.

    Only the non-secret ones: the UI shows them. Secrets reach the other resources as ``EnvVar``.
    """

    environment: dict[str, str] = Field(default_factory=dict, description="LOCK_PIPELINE_* settings by name")

    _settings: "Settings | None" = PrivateAttr(default=None)

    @classmethod
    def of(cls, settings: "Settings") -> "SettingsResource":
        return cls(environment=settings.environment())

    def get(self) -> "Settings":
        if self._settings is None:
            from lock_pipeline.settings import load_settings

            self._settings = load_settings(self.environment, secrets_withheld=True)
        return self._settings

    def access_policy(self) -> "AccessPolicy":
        from lock_pipeline.access.planning import AccessPolicy

        return AccessPolicy.from_settings(self.get())


class PinVaultResource(ConfigurableResource):
    """Encrypts PINs at rest; the key comes from ``LOCK_PIPELINE_PIN_KEY`` (shown by name only)."""

    key: str

    def vault(self) -> "PinVault":
        from lock_pipeline.access.pins import PinVault

        return PinVault(self.key)


class DeliveryResource(ConfigurableResource):
    """The notification signing secret (``LOCK_PIPELINE_NOTIFY_SECRET``, shown by name only); the rest of
    delivery's settings are ordinary settings (SettingsResource)."""

    notify_secret: str | None = None
