"""Push endpoints' questions to the databases: which site is this, is this instant stored.

Read-only. A pushing site is, until the systems registry lands, a vendor plant (an
asset with ``vendor_type`` and ``vendor_plant_id``) whose vendor account holds its
push key; :func:`push_site` is the one lookup to swap when it does.
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from wattline.store.tables import assets, readings
from wattline.store.vendor_plants import PlantNotSyncable, VendorPlantInfo, load_plants


def push_site(main_reader: Engine, vendor_type: str, site_id: str) -> VendorPlantInfo | None:
    """The vendor plant ``site_id`` of ``vendor_type`` with its account, or None.

    None also when the plant has no vendor account (then it has no key to check).
    """
    q = (select(assets.c.id).where(assets.c.vendor_type == vendor_type, assets.c.vendor_plant_id == site_id)
         .order_by(assets.c.id).limit(1))
    with main_reader.connect() as conn:
        asset_id = conn.execute(q).scalar()
    if asset_id is None:
        return None
    try:
        found = load_plants(main_reader, [int(asset_id)])
    except PlantNotSyncable:
        return None
    return found[0] if found else None


def stored_at(telemetry: Engine, series_ids: list[int], ts: int) -> bool:
    """True when any of the series has a reading at ``ts`` (UTC epoch s)."""
    if not series_ids:
        return False
    q = (select(readings.c.series_id).where(readings.c.series_id.in_([int(s) for s in series_ids]),
                                            readings.c.ts == int(ts)).limit(1))
    with telemetry.connect() as conn:
        return conn.execute(q).first() is not None
