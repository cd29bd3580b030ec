"""Settings from the environment (prefix ``WATTLINE_``), with an embedded default.

With nothing set, Wattline keeps two SQLite files in ``WATTLINE_DATA_DIR``
(default ``./wattline-data``): ``main.db`` (registry) and ``telemetry.db``.
Set ``WATTLINE_MAIN_URL`` / ``WATTLINE_TELEMETRY_URL`` to SQLAlchemy URLs to use
PostgreSQL instead (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# where the emulated vendor clouds listen by default (``wattline vendors serve``); here,
# not in the simulator package, so the CLI reads it without loading the simulator
EMULATOR_HOST = "127.0.0.1"
EMULATOR_PORT = 8710


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTLINE_", extra="ignore")

    data_dir: Path = Field(default=Path("wattline-data"))
    main_url: str | None = None
    telemetry_url: str | None = None
    # base64 of 32 bytes; encrypts vendor credentials (AES-256-GCM). If unset, the
    # embedded default keeps a generated key in data_dir/secret.key (mode 0600).
    secret_key: str | None = Field(default=None, repr=False)
    cron_secret: str | None = Field(default=None, repr=False)
    log_level: str = "INFO"
    # latest-value cache: unset = the database answers (the newest stored reading).
    # May hold a password (redis://:pw@host/0): never logged or shown.
    redis_url: str | None = Field(default=None, repr=False)
    # Redis key prefix. WATTLINE_REDIS_NAMESPACE sets it outright ("prod:"); else
    # WATTLINE_ENV (prod | dev | test | ...) makes it "<env>:"; else "wattline:". Two
    # environments sharing one Redis never see each other's keys.
    env: str | None = None
    redis_namespace: str = ""

    @model_validator(mode="after")
    def _namespace_from_env(self) -> "Settings":
        if not self.redis_namespace:
            self.redis_namespace = f"{self.env.strip()}:" if self.env and self.env.strip() else "wattline:"
        return self

    # vendor API that POST /api/test-connection and /api/setup reach; unset: the emulated
    # clouds of ``wattline vendors serve`` on loopback (the product runs offline)
    vendor_base_url: str | None = None

    # MQTT broker of ``wattline mqtt``: mqtt://[user[:password]@]host[:port]; may hold a password
    mqtt_url: str | None = Field(default=None, repr=False)

    # The distributed job engine (procrastinate): a PostgreSQL URL that holds its queue.
    # Unset: jobs run in-process (the embedded default). Set: ``wattline serve`` and
    # ``wattline poll`` defer jobs to ``wattline worker`` processes. May hold a password.
    jobs_url: str | None = Field(default=None, repr=False)
    # the engine's minute tick as this many poll jobs (systems by id modulo n), so the
    # polling of a large fleet spreads over the workers instead of one tick in one worker
    poll_shards: int = Field(default=4, ge=1, le=1024)
    # systems one poller polls at once (``wattline serve``, ``wattline poll``, each
    # worker). Little's law: 10,000 systems a minute spread over 50 s at ~1.5 s a poll is
    # ~300 in flight; 64, the old default, capped a poller near 2,500 a minute at 1 s a call
    poll_concurrency: int = Field(default=1000, ge=1, le=100_000)
    # how often a ``wattline worker`` tells the queue it is alive; a running job whose
    # worker missed three is put back on the queue (engine_tasks.retry_stalled)
    worker_heartbeat_s: float = Field(default=10.0, gt=0, le=300)
    # a job's lease on its plant or system (jobs/leases.py): renewed every quarter of it
    # while the job runs; a killed job's resources are free this long after its last renewal
    lease_s: float = Field(default=60.0, ge=1.0, le=3600.0)

    @property
    def main_database_url(self) -> str:
        return self.main_url or f"sqlite:///{(self.data_dir / 'main.db').resolve()}"

    @property
    def telemetry_database_url(self) -> str:
        return self.telemetry_url or f"sqlite:///{(self.data_dir / 'telemetry.db').resolve()}"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def encryption_key(self) -> bytes:
        """The 32-byte credential key: from the environment, else the data-dir key file."""
        if self.secret_key:
            key = base64.b64decode(self.secret_key)
            if len(key) != 32:
                raise ValueError("WATTLINE_SECRET_KEY must be base64 of exactly 32 bytes")
            return key
        self.ensure_data_dir()
        path = self.data_dir / "secret.key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return base64.b64decode(path.read_text().strip())


def get_settings() -> Settings:
    return Settings()
