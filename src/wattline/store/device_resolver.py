"""The registry's read-only answer to "which device is ``ESP01`` / ``light_1``": the
device source asks it (implements :class:`wattline.domain.devices.DeviceResolver`).

Two queries for all the devices of a batch (:meth:`prefetch`), or one per device
asked, over the main database's read-only handle, remembered for the resolver's life
(an unknown device too): build one per batch of messages to see registrations made
since. (Remembering across batches would save little — the two queries are cheap — and
a device registered meanwhile must not be taken for unknown: its messages would be
kept after its replay.)
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Engine

from wattline.domain.devices import EnergyMethod, RegisteredDevice
from wattline.store import device_registry


class RegistryDeviceResolver:
    def __init__(self, main_reader: Engine, organization_id: int):
        self._engine = main_reader
        self.organization_id = int(organization_id)
        self._known: dict[tuple[str, str], RegisteredDevice | None] = {}

    def prefetch(self, names: Iterable[tuple[str, str]]) -> None:
        """Look up all these (esp32_name, device_id) at once."""
        wanted = {n for n in names if n not in self._known}
        if not wanted:
            return
        with self._engine.connect() as conn:
            found = device_registry.devices_named(conn, self.organization_id, sorted(wanted))
        for key in wanted:
            row = found.get(key)
            self._known[key] = None if row is None else _registered(row)

    def resolve(self, esp32_name: str, device_id: str) -> RegisteredDevice | None:
        key = (esp32_name, device_id)
        if key not in self._known:
            with self._engine.connect() as conn:
                row = device_registry.device(conn, self.organization_id, esp32_name, device_id)
            self._known[key] = None if row is None else _registered(row)
        return self._known[key]


def _registered(row) -> RegisteredDevice:
    return RegisteredDevice(
        asset_id=row["asset_id"], organization_id=row["organization_id"], esp32_name=row["esp32_name"],
        device_id=row["device_id"], classroom_id=row["classroom_id"], classroom=row["classroom"],
        timezone=row["timezone"], method=EnergyMethod(row["energy_method"]), switch=row["switch_id"],
        series=row["series"])
