"""Set-up operations that span the registry and the vendors: vendor accounts with
encrypted credentials, and vendor plants with the points their adapter produces."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from wattline.config import Settings
from wattline.security.crypto import encrypt_credentials
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import registry
from wattline.store.tables import vendor_accounts


def add_vendor_account(conn: Connection, settings: Settings, vendor_type: str, name: str,
                       credentials: dict, *, base_url: str | None = None,
                       organization_id: int | None = None, rate_limits: dict | None = None) -> int:
    """``rate_limits`` overrides the adapter's declared limits for this account
    (keys of VendorLimits: calls_per_minute, calls_per_day, calls_per_month)."""
    get_adapter_class(vendor_type)  # unknown vendor types fail here, before anything is written
    allowed = {"calls_per_minute", "calls_per_day", "calls_per_month"}
    if rate_limits and set(rate_limits) - allowed:
        raise registry.RegistryError(f"rate_limits keys must be among {sorted(allowed)}")
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    if conn.execute(select(vendor_accounts.c.id).where(vendor_accounts.c.organization_id == org,
                                                       vendor_accounts.c.name == name)).first():
        raise registry.RegistryError(f"a vendor account named {name!r} already exists")
    return conn.execute(insert(vendor_accounts).values(
        organization_id=org, vendor_type=vendor_type.lower(), name=name, base_url=base_url,
        credentials_encrypted=encrypt_credentials(settings.encryption_key, credentials),
        rate_limits=rate_limits,
    )).inserted_primary_key[0]


UNLIMITED = {"calls_per_minute": None, "calls_per_day": None, "calls_per_month": None}


def account_for(conn: Connection, vendor_type: str, organization_id: int) -> int | None:
    """The organization's vendor account of that type, if it has exactly one."""
    rows = conn.execute(select(vendor_accounts.c.id).where(
        vendor_accounts.c.vendor_type == vendor_type.lower(),
        vendor_accounts.c.organization_id == organization_id)).all()
    return rows[0][0] if len(rows) == 1 else None


def vendor_point_specs(vendor_type: str) -> list[registry.PointSpec]:
    """Registry points for everything the vendor's adapter reports."""
    cls = get_adapter_class(vendor_type)
    return [
        registry.PointSpec(p.key, p.metric_type, expected_interval_s=cls.limits.interval_s,
                           vendor_field=p.vendor_field)
        for p in cls.points
    ]


def add_vendor_plant(conn: Connection, name: str, vendor_type: str, vendor_plant_id: str, timezone: str, *,
                     start_operating_time: int | None = None, vendor_account_id: int | None = None,
                     asset_id: int | None = None, organization_id: int | None = None,
                     capacity_kw: float | None = None, latitude: float | None = None,
                     longitude: float | None = None) -> int:
    specs = vendor_point_specs(vendor_type)
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    if vendor_account_id is None:
        vendor_account_id = account_for(conn, vendor_type, org)
    pid = registry.add_asset(
        conn, name, "plant", timezone, organization_id=org, asset_id=asset_id, vendor_type=vendor_type.lower(),
        vendor_plant_id=vendor_plant_id, vendor_account_id=vendor_account_id,
        start_operating_time=start_operating_time, capacity_kw=capacity_kw, latitude=latitude,
        longitude=longitude,
    )
    registry.ensure_points(conn, pid, specs)
    return pid
