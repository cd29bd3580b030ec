"""Registry SQL of campus devices (main database): classrooms and devices.

A classroom is a group of kind ``classroom``; a device is an asset of kind
``device`` with a ``devices`` row naming it as its controller does, and a member of
its classroom's group. Callers go through :mod:`wattline.provisioning`.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Connection, func, insert, select

from wattline.domain.devices import CLASSROOM_KIND
from wattline.store.tables import assets, devices, group_members, groups, organizations, points


def _effective_tz():
    return func.coalesce(groups.c.timezone, organizations.c.timezone).label("effective_timezone")


def classroom(conn: Connection, organization_id: int, name: str):
    """The classroom ``name`` (id, name, timezone = its own or None, effective_timezone)."""
    return conn.execute(
        select(groups.c.id, groups.c.name, groups.c.timezone, _effective_tz())
        .join(organizations, organizations.c.id == groups.c.organization_id)
        .where(groups.c.organization_id == organization_id, groups.c.kind == CLASSROOM_KIND,
               groups.c.name == name)).mappings().first()


def insert_classroom(conn: Connection, organization_id: int, name: str, timezone: str | None) -> int:
    return conn.execute(insert(groups).values(
        organization_id=organization_id, kind=CLASSROOM_KIND, name=name, timezone=timezone)).inserted_primary_key[0]


def classrooms(conn: Connection, organization_id: int):
    """Every classroom of the organization with its zone and number of devices, by name."""
    count = (select(func.count()).select_from(devices)
             .where(devices.c.classroom_id == groups.c.id).scalar_subquery().label("devices"))
    return conn.execute(
        select(groups.c.id, groups.c.name, groups.c.timezone, _effective_tz(), count)
        .join(organizations, organizations.c.id == groups.c.organization_id)
        .where(groups.c.organization_id == organization_id, groups.c.kind == CLASSROOM_KIND)
        .order_by(groups.c.name)).mappings().all()


def device_asset_id(conn: Connection, organization_id: int, esp32_name: str, device_id: str) -> int | None:
    return conn.execute(select(devices.c.asset_id).where(
        devices.c.organization_id == organization_id, devices.c.esp32_name == esp32_name,
        devices.c.device_id == device_id)).scalar()


def insert_device(conn: Connection, asset_id: int, organization_id: int, esp32_name: str, device_id: str,
                  classroom_id: int, switch: str | None, method: str) -> None:
    """The device row and its membership of the classroom's group."""
    conn.execute(insert(devices).values(
        asset_id=asset_id, organization_id=organization_id, esp32_name=esp32_name, device_id=device_id,
        classroom_id=classroom_id, switch_id=switch, energy_method=method))
    conn.execute(insert(group_members).values(group_id=classroom_id, asset_id=asset_id))


_DEVICE_COLUMNS = (devices.c.asset_id, devices.c.organization_id, devices.c.esp32_name, devices.c.device_id,
                   devices.c.classroom_id, groups.c.name.label("classroom"), assets.c.name.label("asset_name"),
                   assets.c.timezone, devices.c.switch_id, devices.c.energy_method)


def _devices_query():
    return (select(*_DEVICE_COLUMNS)
            .join(assets, assets.c.id == devices.c.asset_id)
            .join(groups, groups.c.id == devices.c.classroom_id))


def list_devices(conn: Connection, organization_id: int, classroom_id: int | None = None):
    """The organization's devices (optionally of one classroom), by controller and id."""
    q = _devices_query().where(devices.c.organization_id == organization_id)
    if classroom_id is not None:
        q = q.where(devices.c.classroom_id == classroom_id)
    return conn.execute(q.order_by(devices.c.esp32_name, devices.c.device_id)).mappings().all()


def device(conn: Connection, organization_id: int, esp32_name: str, device_id: str):
    """One device row with its series (``series``: point key -> series id), or None."""
    row = conn.execute(_devices_query().where(
        devices.c.organization_id == organization_id, devices.c.esp32_name == esp32_name,
        devices.c.device_id == device_id)).mappings().first()
    if row is None:
        return None
    series = {k: sid for sid, k in conn.execute(
        select(points.c.id, points.c.key).where(points.c.asset_id == row["asset_id"]))}
    return {**row, "series": series}


def devices_named(conn: Connection, organization_id: int, names: Sequence[tuple[str, str]]) -> dict[tuple, dict]:
    """The devices of ``names`` ((esp32_name, device_id) pairs) that are registered, each
    as :func:`device` returns it, keyed by its pair: two queries whatever their number."""
    wanted = set(names)
    if not wanted:
        return {}
    rows = []
    controllers = sorted({esp for esp, _ in wanted})
    for a in range(0, len(controllers), 500):  # bounded IN lists
        rows.extend(r for r in conn.execute(_devices_query().where(
            devices.c.organization_id == organization_id,
            devices.c.esp32_name.in_(controllers[a:a + 500]))).mappings()
            if (r["esp32_name"], r["device_id"]) in wanted)
    series: dict[int, dict[str, int]] = {r["asset_id"]: {} for r in rows}
    ids = sorted(series)
    for a in range(0, len(ids), 500):
        for sid, asset_id, key in conn.execute(select(points.c.id, points.c.asset_id, points.c.key)
                                               .where(points.c.asset_id.in_(ids[a:a + 500]))):
            series[asset_id][key] = sid
    return {(r["esp32_name"], r["device_id"]): {**r, "series": series[r["asset_id"]]} for r in rows}


def organization_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(organizations.c.id).where(organizations.c.name == name)).scalar()
