"""The one way assets and points get registered: vendor accounts and plants, simulated
sites, points a CSV file names, plain assets and groups.

Sources never write the registry: they describe what they need (a
:class:`~wattline.domain.sources.PointDefinition`, a :class:`PointRegistration`) and
the CLI, the demo or a service calls this module. The rules that span the registry
and the vendors live here (a vendor account's credentials must fit the vendor's
model; a vendor plant gets the points its adapter declares); the SQL lives in
:mod:`wattline.store.registry`.

Every function takes ``conn``, a transaction on the main database
(``with ctx.dbs.main.begin() as conn``), so a caller can register several things
atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from wattline.config import Settings
from wattline.domain.sources import PointDefinition, PointRegistration
from wattline.security.crypto import encrypt_credentials
from wattline.sources.vendors.credentials import VendorCredentials, validate_credentials
from wattline.sources.vendors.registry import get_adapter_class
from wattline.store import registry
from wattline.store.registry import Conn, RegistryError

__all__ = [
    "RATE_LIMIT_KEYS",
    "UNLIMITED",
    "PointRegistration",
    "PointsRegistered",
    "RegistryError",
    "account_for",
    "add_asset",
    "add_group",
    "add_vendor_account",
    "add_vendor_plant",
    "ensure_organization",
    "ensure_site",
    "register_points",
    "register_points_by_name",
    "validate_vendor_credentials",
    "vendor_point_definitions",
]

RATE_LIMIT_KEYS = ("calls_per_minute", "calls_per_day", "calls_per_month")
UNLIMITED = {key: None for key in RATE_LIMIT_KEYS}


# -- organizations, assets, groups ---------------------------------------------------


def ensure_organization(conn: Conn, name: str = registry.DEFAULT_ORG, timezone: str = "UTC", **kw: Any) -> int:
    """The organization's id, created if it does not exist yet."""
    return registry.ensure_organization(conn, name, timezone, **kw)


def add_asset(conn: Conn, name: str, kind: str, timezone: str, **kw: Any) -> int:
    """A new asset (kind, IANA timezone checked); RegistryError says what is wrong."""
    return registry.add_asset(conn, name, kind, timezone, **kw)


def add_group(conn: Conn, name: str, kind: str, member_ids: Iterable[int], **kw: Any) -> int:
    return registry.add_group(conn, name, kind, member_ids, **kw)


def register_points(conn: Conn, asset_id: int, definitions: Iterable[PointDefinition]) -> dict[str, int]:
    """Create the asset's missing points; point key -> series id for all given.
    A point that exists with another metric type is a RegistryError."""
    return registry.ensure_points(conn, asset_id, definitions)


# -- vendor accounts and plants ------------------------------------------------------


def validate_vendor_credentials(vendor_type: str, credentials: Mapping[str, Any]) -> VendorCredentials:
    """The credentials as the vendor's pydantic model; :class:`InvalidCredentials`
    (naming the missing, unknown or empty keys, never a value) if they do not fit.
    UnknownVendorError for a vendor type without an adapter."""
    cls = get_adapter_class(vendor_type)
    return validate_credentials(cls.vendor_type, cls.credentials_model, credentials)


def add_vendor_account(conn: Conn, settings: Settings, vendor_type: str, name: str,
                       credentials: Mapping[str, Any], *, base_url: str | None = None,
                       organization_id: int | None = None, rate_limits: dict | None = None) -> int:
    """A vendor account with its credentials encrypted (AES-256-GCM).

    The credentials are checked against the vendor's model first: wrong or missing
    keys raise :class:`InvalidCredentials` and nothing is written. ``rate_limits``
    overrides the adapter's declared limits for this account (keys of
    :data:`RATE_LIMIT_KEYS`; ``None`` values = unlimited).
    """
    creds = validate_vendor_credentials(vendor_type, credentials)  # also refuses unknown vendor types
    if rate_limits and set(rate_limits) - set(RATE_LIMIT_KEYS):
        raise RegistryError(f"rate_limits keys must be among {sorted(RATE_LIMIT_KEYS)}")
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    if registry.vendor_account_exists(conn, org, name):
        raise RegistryError(f"a vendor account named {name!r} already exists")
    return registry.insert_vendor_account(
        conn, org, vendor_type.lower(), name, encrypt_credentials(settings.encryption_key, creds.to_storage()),
        base_url=base_url, rate_limits=rate_limits)


def account_for(conn: Conn, vendor_type: str, organization_id: int) -> int | None:
    """The organization's vendor account of that type, if it has exactly one."""
    ids = registry.vendor_account_ids(conn, vendor_type.lower(), organization_id)
    return ids[0] if len(ids) == 1 else None


def vendor_point_definitions(vendor_type: str) -> list[PointDefinition]:
    """Registry points for everything the vendor's adapter declares it reports."""
    cls = get_adapter_class(vendor_type)
    return [PointDefinition(p.key, p.metric_type, expected_interval_s=cls.limits.interval_s,
                            vendor_field=p.vendor_field)
            for p in cls.points]


def add_vendor_plant(conn: Conn, name: str, vendor_type: str, vendor_plant_id: str, timezone: str, *,
                     start_operating_time: int | None = None, vendor_account_id: int | None = None,
                     asset_id: int | None = None, organization_id: int | None = None,
                     capacity_kw: float | None = None, latitude: float | None = None,
                     longitude: float | None = None) -> int:
    """A plant of a vendor, with the points its adapter reports and (unless given)
    the organization's only account of that vendor."""
    definitions = vendor_point_definitions(vendor_type)
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    if vendor_account_id is None:
        vendor_account_id = account_for(conn, vendor_type, org)
    pid = registry.add_asset(
        conn, name, "plant", timezone, organization_id=org, asset_id=asset_id, vendor_type=vendor_type.lower(),
        vendor_plant_id=vendor_plant_id, vendor_account_id=vendor_account_id,
        start_operating_time=start_operating_time, capacity_kw=capacity_kw, latitude=latitude,
        longitude=longitude,
    )
    registry.ensure_points(conn, pid, definitions)
    return pid


# -- simulated sites -----------------------------------------------------------------


def ensure_site(conn: Conn, name: str, timezone: str, points: Iterable[PointDefinition], *,
                latitude: float | None = None, longitude: float | None = None,
                capacity_kw: float | None = None) -> dict[str, int]:
    """Find or create the ``site`` asset ``name`` and its points; key -> series id.

    Idempotent. An existing site whose location or capacity changed (the same name,
    another fleet seed) is updated, so the registry describes the fleet that runs.
    """
    row = registry.asset_by_name(conn, name)
    if row is None:
        aid = registry.add_asset(conn, name, "site", timezone, latitude=latitude, longitude=longitude,
                                 capacity_kw=capacity_kw)
    else:
        if row["kind"] != "site":
            raise RegistryError(f"asset {name!r} exists and is a {row['kind']}, not a site")
        aid = row["id"]
        changes = {k: v for k, v in (("latitude", latitude), ("longitude", longitude),
                                     ("capacity_kw", capacity_kw)) if row[k] != v}
        registry.update_asset(conn, aid, **changes)
    return registry.ensure_points(conn, aid, points)


class SiteProvisioner:
    """Registers simulated sites, one transaction each, over the main database.

    What the simulator is given (it never imports the store): see
    :class:`wattline.simulator.ports.SiteRegistrar`.
    """

    def __init__(self, main_engine):
        self._engine = main_engine

    def ensure_site(self, name: str, timezone: str, points: Iterable[PointDefinition], *,
                    latitude: float | None = None, longitude: float | None = None,
                    capacity_kw: float | None = None) -> dict[str, int]:
        with self._engine.begin() as conn:
            return ensure_site(conn, name, timezone, list(points), latitude=latitude, longitude=longitude,
                               capacity_kw=capacity_kw)


# -- points a source names by asset name (CSV import) ----------------------------------


@dataclass
class PointsRegistered:
    """Outcome of :func:`register_points_by_name`.

    ``asset_ids``: asset name -> id of every asset found; ``created``: ``asset/point``
    of the points created; ``refused``: (asset name, point key) -> why not.
    """

    asset_ids: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)


def register_points_by_name(conn: Conn, registrations: Iterable[PointRegistration]) -> PointsRegistered:
    """Create the points that do not exist yet on existing assets.

    An unknown asset, or a point that exists with another metric type, is refused
    (with the reason); the others are registered.
    """
    out = PointsRegistered()
    unknown: set[str] = set()
    for reg in registrations:
        key = (reg.asset_name, reg.definition.key)
        if reg.asset_name in unknown:
            out.refused[key] = f"unknown asset {reg.asset_name!r} (add it with 'wattline assets add')"
            continue
        aid = out.asset_ids.get(reg.asset_name)
        if aid is None:
            row = registry.asset_by_name(conn, reg.asset_name)
            if row is None:
                unknown.add(reg.asset_name)
                out.refused[key] = f"unknown asset {reg.asset_name!r} (add it with 'wattline assets add')"
                continue
            aid = out.asset_ids[reg.asset_name] = row["id"]
        existing = registry.point(conn, aid, reg.definition.key)
        if existing is None:
            registry.ensure_points(conn, aid, [reg.definition])
            out.created.append(f"{reg.asset_name}/{reg.definition.key}")
        elif existing["metric_type"] != reg.definition.metric_type.value:
            out.refused[key] = (f"point {reg.definition.key!r} of {reg.asset_name!r} is a "
                                f"{existing['metric_type']} series, not {reg.definition.metric_type.value}")
    return out


# -- campus classrooms and devices -------------------------------------------------

from wattline.domain import devices as _devices  # noqa: E402
from wattline.domain import timeutil as _timeutil  # noqa: E402
from wattline.store import device_registry  # noqa: E402

__all__ += ["add_classroom", "add_device", "classrooms", "devices", "organization_named"]


def organization_named(conn: Conn, name: str | None = None) -> int:
    """The id of organization ``name`` (default: the default organization, created if
    missing); RegistryError for another name that does not exist."""
    if name is None or name == registry.DEFAULT_ORG:
        return registry.ensure_organization(conn)
    org = device_registry.organization_id(conn, name)
    if org is None:
        raise RegistryError(f"unknown organization {name!r}")
    return org


def add_classroom(conn: Conn, name: str, timezone: str | None = None, *, organization_id: int | None = None) -> int:
    """A classroom (a group of kind ``classroom``) named ``name``, e.g. ``CR-101``.

    ``timezone``: its IANA zone; None = its organization's (followed if that changes).
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise RegistryError("classroom name must be 1-200 characters")
    if timezone is not None:
        try:
            _timeutil.zone(timezone)
        except _timeutil.TimezoneError as exc:
            raise RegistryError(str(exc)) from exc
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    if device_registry.classroom(conn, org, name) is not None:
        raise RegistryError(f"a classroom named {name!r} already exists")
    return device_registry.insert_classroom(conn, org, name, timezone)


def add_device(conn: Conn, esp32_name: str, device_id: str, classroom: str, *, switch: str | None = None,
               method: str = "counter", organization_id: int | None = None) -> int:
    """A metered device ``device_id`` of controller ``esp32_name`` in ``classroom``.

    It becomes an asset of kind ``device`` named ``ESP01/light_1`` in the classroom's
    zone, a member of the classroom, with the points of its energy method
    (``counter``: ``energy_total`` kWh, ``power`` kW, ``switch_state``; ``power``: no
    counter). ``switch``: the controller's switch feeding it (``sw1``). Returns the
    asset id. The caller replays the messages kept while it was unknown.
    """
    for what, value in (("esp32_name", esp32_name), ("device_id", device_id)) + (
            (("switch", switch),) if switch is not None else ()):
        problem = _devices.name_problem(what, value)
        if problem:
            raise RegistryError(problem)
    try:
        energy_method = _devices.EnergyMethod(method)
    except ValueError:
        raise RegistryError(f"method must be counter or power, not {method!r}") from None
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    room = device_registry.classroom(conn, org, classroom)
    if room is None:
        raise RegistryError(f"unknown classroom {classroom!r} (add it with 'wattline classrooms add {classroom}')")
    if device_registry.device_asset_id(conn, org, esp32_name, device_id) is not None:
        raise RegistryError(f"device {_devices.device_asset_name(esp32_name, device_id)!r} is already registered")
    name = _devices.device_asset_name(esp32_name, device_id)
    if registry.asset_by_name(conn, name) is not None:  # asset names are global: another organization's
        name = f"{name}@{org}"
    aid = registry.add_asset(conn, name, _devices.ASSET_KIND, room["effective_timezone"] or "UTC",
                             organization_id=org)
    registry.ensure_points(conn, aid, _devices.device_points(energy_method))
    registry.update_asset(conn, aid, attributes={"esp32_name": esp32_name, "device_id": device_id,
                                                 "switch": switch, "energy_method": energy_method.value})
    device_registry.insert_device(conn, aid, org, esp32_name, device_id, room["id"], switch, energy_method.value)
    return aid


def classrooms(conn: Conn, organization_id: int | None = None) -> list[dict]:
    """The organization's classrooms: id, name, timezone (own or None), effective_timezone, devices."""
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    return [dict(r) for r in device_registry.classrooms(conn, org)]


def devices(conn: Conn, organization_id: int | None = None, classroom: str | None = None) -> list[dict]:
    """The organization's devices (of one classroom if given); RegistryError for an unknown classroom."""
    org = organization_id if organization_id is not None else registry.ensure_organization(conn)
    room_id = None
    if classroom is not None:
        room = device_registry.classroom(conn, org, classroom)
        if room is None:
            raise RegistryError(f"unknown classroom {classroom!r}")
        room_id = room["id"]
    return [dict(r) for r in device_registry.list_devices(conn, org, room_id)]
