"""What a job needs to know about a vendor plant, read from the registry (read-only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from wattline.domain.sources import ResolvedSeries, StaticSeriesResolver
from wattline.store import bulk
from wattline.store.series_resolver import load_series
from wattline.store.tables import assets, organizations, vendor_accounts


class PlantNotFound(LookupError):
    pass


class PlantNotSyncable(ValueError):
    """The plant lacks what a vendor sync needs (vendor account, vendor plant id)."""


@dataclass(frozen=True)
class VendorPlantInfo:
    plant_id: int
    name: str
    timezone: str
    organization_id: int
    vendor_type: str
    vendor_plant_id: str
    vendor_account_id: int
    base_url: str | None
    credentials_encrypted: bytes
    start_operating_time: int | None
    series: dict[str, int]  # point key -> series id
    rate_limits: dict | None = None  # the account's overrides of the adapter's limits
    points: tuple[ResolvedSeries, ...] = field(default=(), repr=False)

    def resolver(self) -> StaticSeriesResolver:
        """The plant's points as the read-only resolver a source is given."""
        return StaticSeriesResolver(self.points)


def load_plant(main_reader: Engine, plant_id: int) -> VendorPlantInfo:
    plants = load_plants(main_reader, [plant_id])
    if not plants:
        raise PlantNotFound(f"no plant with id {plant_id}")
    return plants[0]


def load_plants(main_reader: Engine, plant_ids: list[int] | None = None, *,
                auto_sync_only: bool = False) -> list[VendorPlantInfo]:
    """Vendor plants (by id, or all), with their account and series."""
    q = (
        select(assets, vendor_accounts.c.base_url, vendor_accounts.c.credentials_encrypted,
               vendor_accounts.c.rate_limits,
               vendor_accounts.c.vendor_type.label("account_vendor_type"))
        .join(vendor_accounts, vendor_accounts.c.id == assets.c.vendor_account_id, isouter=True)
        .join(organizations, organizations.c.id == assets.c.organization_id)
        .where(assets.c.kind == "plant")
        .order_by(assets.c.id)
    )
    if plant_ids is not None:
        q = q.where(assets.c.id.in_(plant_ids))
    if auto_sync_only:
        q = q.where(organizations.c.auto_sync_enabled.is_(True), assets.c.vendor_account_id.is_not(None))
    with main_reader.connect() as conn:
        rows = conn.execute(q).mappings().all()
        by_asset: dict[int, list[ResolvedSeries]] = {}
        for s in load_series(conn, [r["id"] for r in rows]):
            by_asset.setdefault(s.asset_id, []).append(s)
    out = []
    for r in rows:
        if r["vendor_account_id"] is None or not r["vendor_plant_id"]:
            if plant_ids is not None:
                raise PlantNotSyncable(
                    f"plant {r['id']} ({r['name']}) has no vendor account or vendor plant id")
            continue
        pts = tuple(by_asset.get(r["id"], ()))
        out.append(VendorPlantInfo(
            plant_id=r["id"], name=r["name"], timezone=r["timezone"], organization_id=r["organization_id"],
            vendor_type=r["vendor_type"] or r["account_vendor_type"], vendor_plant_id=r["vendor_plant_id"],
            vendor_account_id=r["vendor_account_id"], base_url=r["base_url"],
            credentials_encrypted=r["credentials_encrypted"], start_operating_time=r["start_operating_time"],
            series={s.point_key: s.series_id for s in pts}, rate_limits=r["rate_limits"], points=pts,
        ))
    return out


def newest_reading_per_series(telemetry: Engine, series_ids) -> dict[int, int]:
    """MAX(ts) of each series that has readings (one query for all)."""
    ids = sorted({int(s) for s in series_ids})
    if not ids:
        return {}
    cte = bulk.values_cte("s", ("series_id",), [(s,) for s in ids])
    with telemetry.connect() as conn:
        rows = conn.exec_driver_sql(
            f"WITH {cte} SELECT s.series_id, (SELECT MAX(ts) FROM readings r WHERE r.series_id = s.series_id) FROM s"
        ).all()
    return {int(sid): int(ts) for sid, ts in rows if ts is not None}
