"""Fetch a plant's telemetry window from its vendor and put it through the pipeline.

Shared by backfill, daily sync and polling. Every call is logged to
``vendor_sync_logs``; rejected records are logged with their raw data; the good
records of a window that failed halfway (``partial``, always a prefix in time) are
kept, so a rerun resumes right after them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import httpx

from wattline.context import AppContext
from wattline.domain.readings import ReadingBatch
from wattline.jobs import synclog
from wattline.jobs.plants import VendorPlantInfo
from wattline.jobs.vendor_credentials import credential_saver
from wattline.security.crypto import decrypt_credentials
from wattline.sources.vendors import VendorAdapter, VendorError
from wattline.sources.vendors import normalize
from wattline.sources.vendors.http import tls_context
from wattline.sources.vendors.transport import vendor_http_client
from wattline.sources.vendors.models import FetchResult, VendorRecord
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store.vendor_plants import newest_reading_per_series


class VendorSession:
    """Adapters for the plants of one job run; each vendor account's adapter shares
    the account's rate limiter (held by the app context, so all jobs share it)."""

    def __init__(self, ctx: AppContext, *, timeout_s: float = 10.0,
                 retry_waits_s: tuple[float, ...] | None = None, max_connections: int = 32,
                 wrap_limiter: Callable[[Any], Any] | None = None):
        """``wrap_limiter``: how the adapters see the account's shared limiter (the
        poller's keeps limiter waits out of a poll's timeout); default as it is."""
        self.ctx = ctx
        self.wrap_limiter = wrap_limiter
        self.timeout_s = timeout_s
        self.retry_waits_s = retry_waits_s
        self._client = vendor_http_client(timeout=httpx.Timeout(timeout_s), ssl_context=tls_context(),
                                          max_connections=max_connections)
        self._adapters: dict[int, VendorAdapter] = {}
        self._made_from: dict[int, bytes | str] = {}  # account id -> the credentials blob it was made from

    def has_adapter(self, vendor_account_id: int) -> bool:
        """Whether the account's adapter is made (:meth:`adapter_for` then costs nothing)."""
        return vendor_account_id in self._adapters

    def adapter_for(self, plant: VendorPlantInfo) -> VendorAdapter:
        adapter = self._adapters.get(plant.vendor_account_id)
        if adapter is not None and self._made_from.get(plant.vendor_account_id) != plant.credentials_encrypted:
            # the account's credentials changed since (an owner's edit, a token another
            # process rotated): a long-lived poller must not go on with the old ones
            adapter = None
        if adapter is None:
            cls = get_adapter_class(plant.vendor_type)
            creds = decrypt_credentials(self.ctx.settings.encryption_key, plant.credentials_encrypted)
            limits = dataclasses.replace(cls.limits, **plant.rate_limits) if plant.rate_limits else cls.limits
            key = f"account:{plant.vendor_account_id}"
            fresh = key not in self.ctx.limiters
            limiter = self.ctx.limiters.get(key, limits)
            if fresh:
                # quotas hold across processes: count the calls already logged today / this month
                limiter.set_usage(*synclog.calls_used(self.ctx.dbs.telemetry, plant.vendor_account_id))
            if self.wrap_limiter is not None:
                limiter = self.wrap_limiter(limiter)
            kw = {"retry_waits_s": self.retry_waits_s} if self.retry_waits_s is not None else {}
            adapter = cls(plant.base_url or cls.default_base_url, creds, client=self._client,
                          timeout_s=self.timeout_s, limiter=limiter, **kw)
            if hasattr(adapter, "on_credentials"):  # OAuth vendors: keep a rotated refresh token
                adapter.on_credentials = credential_saver(self.ctx, plant.vendor_account_id)
            self._adapters[plant.vendor_account_id] = adapter
            self._made_from[plant.vendor_account_id] = plant.credentials_encrypted
        return adapter

    async def aclose(self) -> None:
        for adapter in self._adapters.values():  # a login a poll's timeout left running
            await adapter.finish_login()
        await self._client.aclose()

    async def __aenter__(self) -> "VendorSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def records_to_batch(plant: VendorPlantInfo, records: list[VendorRecord], source: str) -> ReadingBatch:
    """Readings of every point the plant has, each linked to its record's raw payload
    (the normalisation is the source's: :func:`wattline.sources.vendors.normalize.records_to_batch`)."""
    return normalize.records_to_batch(plant.resolver(), plant.plant_id, records, source)


def store_fetch(ctx: AppContext, plant: VendorPlantInfo, fetched: FetchResult, job: str) -> None:
    """Ingest the fetched records and log their calls and rejected records."""
    if fetched.records:
        ctx.pipeline.ingest(records_to_batch(plant, fetched.records, f"vendor:{plant.vendor_type}"),
                            refresh_summaries=False)
    log_fetch(ctx, plant, fetched, job)


def log_fetch(ctx: AppContext, plant: VendorPlantInfo, fetched: FetchResult, job: str) -> None:
    synclog.log_calls(ctx.dbs.telemetry, plant.vendor_account_id, plant.plant_id, fetched.calls, job)
    synclog.log_rejected(ctx.dbs.telemetry, plant.vendor_account_id, plant.plant_id, fetched.rejected, job)


def fetch_log_rows(fetches: list[tuple[VendorPlantInfo, FetchResult]], job: str) -> list[dict]:
    """The call and rejected-record log rows of many plants' fetches, not yet written."""
    rows = []
    for plant, fetched in fetches:
        rows += synclog.call_rows(plant.vendor_account_id, plant.plant_id, fetched.calls, job)
        rows += synclog.rejected_rows(plant.vendor_account_id, plant.plant_id, fetched.rejected, job)
    return rows


async def fetch_only(session: VendorSession, plant: VendorPlantInfo, start_ts: int,
                     end_ts: int) -> tuple[FetchResult, VendorError | None]:
    """Fetch [start_ts, end_ts). A VendorError after retries comes back beside the good
    prefix fetched before it, not raised."""
    try:
        adapter = session.adapter_for(plant)  # stored credentials the vendor's model refuses: VendorError
        return await adapter.fetch_history(plant.vendor_plant_id, start_ts, end_ts, plant.timezone), None
    except VendorError as exc:
        partial = exc.partial or FetchResult()
        partial.calls = exc.calls or partial.calls
        return partial, exc


def merge(results: list[FetchResult]) -> FetchResult:
    """Consecutive windows' results as one (records stay in time order)."""
    out = FetchResult()
    for r in results:
        out.records.extend(r.records)
        out.rejected.extend(r.rejected)
        out.calls.extend(r.calls)
    return out


def last_stored(ctx: AppContext, plants: list[VendorPlantInfo]) -> dict[int, int]:
    """Newest stored reading per plant (one query for all): where a resume starts."""
    sids = {s: p.plant_id for p in plants for s in p.series.values()}
    out: dict[int, int] = {}
    for sid, ts in newest_reading_per_series(ctx.dbs.telemetry, sids).items():
        pid = sids[sid]
        out[pid] = max(out.get(pid, ts), ts)
    return out
