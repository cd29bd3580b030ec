"""What a running Wattline process holds: settings, database handles, the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from wattline.config import Settings, get_settings
from wattline.pipeline import Pipeline
from wattline.domain.latest import LatestValueStore
from wattline.sources.vendors.ratelimit import RateLimiterRegistry
from wattline.store.engines import Databases, open_databases
from wattline.store.latest_values import DatabaseLatestValues, open_latest_values
from wattline.store.migrate import upgrade_all


@dataclass
class AppContext:
    settings: Settings
    dbs: Databases
    pipeline: Pipeline
    # one rate limiter per vendor account, shared by backfill, sync and polling
    limiters: RateLimiterRegistry = field(default_factory=RateLimiterRegistry)
    # current values for the API; the pipeline writes to it after each commit
    latest_values: LatestValueStore | None = None

    def __post_init__(self) -> None:
        if self.latest_values is None:
            self.latest_values = DatabaseLatestValues(self.dbs.telemetry)

    def close(self) -> None:
        getattr(self.latest_values, "close", lambda: None)()
        self.dbs.dispose()


def open_context(settings: Settings | None = None, *, migrate: bool = True) -> AppContext:
    settings = settings or get_settings()
    settings.ensure_data_dir()
    if migrate:
        # the read-only handle needs the SQLite file to exist: migrate first
        from wattline.store.engines import dispose_engine, make_engine

        main, tel = make_engine(settings.main_database_url), make_engine(settings.telemetry_database_url)
        upgrade_all(main, tel)
        dispose_engine(main)
        dispose_engine(tel)
    dbs = open_databases(settings.main_database_url, settings.telemetry_database_url)
    latest = open_latest_values(dbs.telemetry, settings.redis_url, settings.redis_namespace, dbs.main_reader)
    # only a cache needs the pipeline's writes (the database holds the readings already)
    sink = latest if settings.redis_url else None
    limiters = RateLimiterRegistry()
    if settings.redis_url:  # per-account vendor limits shared by every worker on this Redis
        from wattline.sources.vendors.ratelimit_shared import shared_limiter_factory

        limiters = RateLimiterRegistry(shared_limiter_factory(settings.redis_url, settings.redis_namespace))
    return AppContext(settings, dbs, Pipeline(dbs.telemetry, dbs.main_reader, latest_values=sink),
                      limiters=limiters, latest_values=latest)
