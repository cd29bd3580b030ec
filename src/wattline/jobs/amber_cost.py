"""Amber general-channel prices as cost versions: cost that follows a dynamic tariff.

Each 30-minute price interval becomes one cost version, effective from the interval's
start boundary (``endTime - duration``; Amber's ``startTime`` is that + 1 s), with the
rate converted from c/kWh incl. GST to AUD per kWh (micro-units: 1 c/kWh = 10,000).
The scope is an organization or one asset (``store.cost_versions_repo``). Running it
again changes nothing (the repo returns the stored version); a price Amber revised
later is stored as a newer version for the same instant, which then wins.

Only settled prices are used unless ``include_estimates``: forecasts and the current
interval's estimate would otherwise price energy at a number Amber has not charged.

A **negative** price cannot be a cost version (the ledger's rates are >= 0, a
database constraint): such an interval gets a version at 0 — so the previous,
positive rate does not carry on over it — and is listed in ``clamped`` with its
real price (which the ``price_general_c_kwh`` point keeps, negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from wattline.store.registry import Conn as Connection

from wattline.context import AppContext
from wattline.security.crypto import decrypt_credentials
from wattline.sources.vendors.amber import AmberAdapter, PriceInterval
from wattline.sources.vendors.models import CallLog, RejectedRecord
from wattline.store import cost_versions_repo, vendor_accounts_repo

CURRENCY = "AUD"
MICRO_PER_CENT = 10_000  # micro-AUD per cent


class AmberCostError(ValueError):
    """The account or site cannot be used (the message says why)."""


@dataclass
class AmberCostResult:
    """What a run did: versions ``created`` and already ``existing``; ``clamped``
    (interval start, c/kWh) of negative prices stored at 0; ``skipped_estimates``;
    ``rejected`` records with the reason; the vendor ``calls``."""

    created: int = 0
    existing: int = 0
    clamped: list[tuple[int, float]] = field(default_factory=list)
    skipped_estimates: int = 0
    rejected: list[RejectedRecord] = field(default_factory=list)
    calls: list[CallLog] = field(default_factory=list)


def rate_micro(c_per_kwh: float) -> int:
    """c/kWh -> micro-AUD per kWh, rounded half up (``25.12345`` -> ``2_512_345``)."""
    return int((Decimal(str(c_per_kwh)) * MICRO_PER_CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prices_to_cost_versions(conn: Connection, prices: list[PriceInterval], ref: cost_versions_repo.ScopeRef, *,
                            include_estimates: bool = False, created_by: str = "amber",
                            result: AmberCostResult | None = None) -> AmberCostResult:
    """One cost version per price interval start, in ``conn``'s transaction (idempotent)."""
    if ref.scope not in ("organization", "asset"):
        raise AmberCostError("an Amber tariff applies to an organization or an asset")
    out = result or AmberCostResult()
    for p in prices:
        if p.estimate and not include_estimates:
            out.skipped_estimates += 1
            continue
        micro = rate_micro(p.c_per_kwh)
        note = f"Amber general price {p.c_per_kwh:g} c/kWh ({p.spike_status})"
        if micro < 0:
            out.clamped.append((p.start_ts, p.c_per_kwh))
            micro, note = 0, note + "; negative, stored as 0"
        _v, created = cost_versions_repo.add(conn, rate_micro_per_kwh=micro, effective_from=p.start_ts, ref=ref,
                                            currency=CURRENCY, notes=note, created_by=created_by)
        if created:
            out.created += 1
        else:
            out.existing += 1
    return out


async def cost_from_amber(ctx: AppContext, account_id: int, site_id: str | None, start_ts: int, end_ts: int, *,
                          asset: str | None = None, organization: str | None = None,
                          include_estimates: bool = False, **adapter_kw) -> AmberCostResult:
    """Fetch the site's general prices for ``[start_ts, end_ts)`` and store them as cost
    versions for ``asset`` (by name) or ``organization`` (by name; default: the account's)."""
    with ctx.dbs.main.connect() as conn:
        row = vendor_accounts_repo.get(conn, account_id)
    if row is None or row["vendor_type"] != "amber":
        raise AmberCostError(f"no Amber vendor account with id {account_id}")
    creds = decrypt_credentials(ctx.settings.encryption_key, row["credentials_encrypted"])
    result = AmberCostResult()
    async with AmberAdapter(row["base_url"], creds, **adapter_kw) as adapter:
        if site_id is None:
            sites = await adapter.list_plants()
            if len(sites) != 1:
                raise AmberCostError(f"the account has {len(sites)} sites: give --site")
            site_id = sites[0].vendor_plant_id
        prices, rejected, calls = await adapter.fetch_general_prices(site_id, start_ts, end_ts)
    result.rejected, result.calls = rejected, calls
    with ctx.dbs.main.begin() as conn:
        if asset is None and organization is None:
            ref = cost_versions_repo.resolve_scope(conn, organization_id=row["organization_id"])
        else:
            ref = cost_versions_repo.resolve_scope(conn, asset=asset, organization=organization)
        prices_to_cost_versions(conn, prices, ref, include_estimates=include_estimates,
                                created_by=f"amber:{account_id}", result=result)
    return result
