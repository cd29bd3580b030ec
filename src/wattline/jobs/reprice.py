"""The recalculation job a new cost version starts (``POST /api/power-analytics/
cost-versions``, ``wattline cost-versions add``).

Cost is priced on read from the ledger (``store.energy_costs``), so nothing stored
holds a price and a version needs no rewrite to take effect. What the job does: over
the range and scope the version covers — [its effective instant, now) for the
assets of its scope — it rebuilds the stored buckets of their energy series from the
ledger (``pipeline.aggregate.recompute``, verified: ``buckets_rewritten`` counts the
buckets that differed) and reports, chunk by chunk, the ledger entries the version
now prices and their cost before (without the version) and after (with it).
Running it again changes nothing stored and reports the same figures.
"""

from __future__ import annotations

import asyncio

import numpy as np

from wattline import clock, logs
from wattline.context import AppContext
from wattline.domain.cost import tariff, price_entries
from wattline.jobs.reconcile import rebuild_buckets
from wattline.store import cost_versions_repo, energy_costs
from wattline.store import reconcile_queries as Q

log = logs.get("wattline.reprice")

SERIES_CHUNK = 20  # series per step
WINDOW_S = 31 * 86400  # ledger read per step, so a campus-year never sits in memory at once


def plan(ctx: AppContext, version_id: int, now: int | None = None) -> dict:
    """What the job covers: the version, its range [start, end) (UTC epoch s), the
    energy series of its scope's assets and their tariffs with and without it."""
    end = clock.now_s() if now is None else int(now)
    with ctx.dbs.main_reader.connect() as conn:
        row = cost_versions_repo.get(conn, version_id)
        if row is None:
            raise LookupError(f"no cost version {version_id}")
        assets = Q.assets_in_scope(conn, row["scope"], row["scope_id"])
        versions = cost_versions_repo.domain_versions(conn)
        scopes = cost_versions_repo.asset_scopes(conn, assets)
    series = energy_costs.energy_series_of_assets(ctx.dbs.telemetry, assets)  # series id -> asset id
    without = [v for v in versions if v.version_id != version_id]
    after = {s: tariff(versions, scopes[a]) for s, a in series.items() if a in scopes}
    before = {s: tariff(without, scopes[a]) for s, a in series.items() if a in scopes}
    with ctx.dbs.telemetry.connect() as conn:
        tz = Q.series_timezones(conn, list(series))
    return {"version": row, "start": int(row["effective_from"]), "end": end, "series": sorted(after),
            "after": after, "before": before, "tz": tz}


def _covered(p: dict, series: list[int], lo: int, hi: int, out: dict) -> None:
    """Add to ``out`` the entries of ``series`` ending in (lo, hi] that the version prices."""
    vid = p["version"]["id"]
    with_ctx = p["ctx"]
    with with_ctx.dbs.telemetry.connect() as conn:
        entries = Q.entries_ending(conn, series, lo, hi)
    for sid, e in entries.items():
        after = p["after"][sid]
        priced = price_entries(after, e["start_ts"], e["end_ts"], e["delta"])
        mine = np.array([v is not None and v.version_id == vid for v in after.versions], bool)[priced["version"]]
        if not mine.any():
            continue
        out["entries_covered"] += int(np.unique(priced["entry"][mine]).size)
        out["energy_milli_wh"] += int(priced["energy"][mine].sum())
        out["cost_after_micro"] += int(priced["cost"][mine].sum())
        was = price_entries(p["before"][sid], priced["start"][mine], priced["end"][mine], priced["energy"][mine])
        out["cost_before_micro"] += int(was["cost"].sum())
        out["unpriced_before_milli_wh"] += int(was["energy"][~was["priced"]].sum())
        before = p["before"][sid].versions
        out["_currencies_before"].update(before[k].currency for k in np.unique(was["version"][was["priced"]]).tolist())


def _step(ctx: AppContext, p: dict, series: list[int], out: dict) -> None:
    """One chunk of series over the whole range, window by window: verify/rebuild the
    buckets and add up what the version covers."""
    p = dict(p, ctx=ctx)
    with ctx.dbs.telemetry.connect() as conn:
        first = Q.first_entry_end(conn, series, p["start"])
    if first is None or first > p["end"]:
        return
    lo = p["start"]
    while lo < p["end"]:
        hi = min(lo + WINDOW_S, p["end"])
        _covered(p, series, lo, hi, out)
        if hi >= first:
            out["buckets_rewritten"] += len(rebuild_buckets(ctx, series, max(lo, first - 1), hi,
                                                            {s: p["tz"].get(s, "UTC") for s in series}))
        lo = hi


def reprice_work(ctx: AppContext, version_id: int):
    """The job's work (``JobRunner.submit``): progress after each chunk of series."""

    async def work(report) -> dict:
        p = await asyncio.to_thread(plan, ctx, version_id)
        v = p["version"]
        out = {"cost_version_id": version_id, "scope": v["scope"], "scope_id": v["scope_id"],
               "currency": v["currency"], "series": len(p["series"]), "series_done": 0, "entries_covered": 0,
               "energy_milli_wh": 0, "cost_before_micro": 0, "cost_after_micro": 0, "unpriced_before_milli_wh": 0,
               "buckets_rewritten": 0, "_currencies_before": set()}

        def public() -> dict:
            d = {k: v for k, v in out.items() if not k.startswith("_")}
            d["currencies_before"] = sorted(c for c in out["_currencies_before"] if c)
            return d

        report(public())
        for i in range(0, len(p["series"]), SERIES_CHUNK):
            chunk = p["series"][i:i + SERIES_CHUNK]
            await asyncio.to_thread(_step, ctx, p, chunk, out)
            out["series_done"] += len(chunk)
            report(public())
        log.info("reprice.done", **public())
        return public()

    return work


def job_params(version: dict, now: int | None = None) -> dict:
    """The ``params`` of the job row: what it covers."""
    return {"cost_version_id": int(version["id"]), "scope": version["scope"], "scope_id": version["scope_id"],
            "start": int(version["effective_from"]), "end": clock.now_s() if now is None else int(now)}
