"""The registry's read-only answer to "which device is ``ESP01`` / ``light_1``": the
device source asks it (implements :class:`wattline.domain.devices.DeviceResolver`).

One query per device asked, over the main database's read-only handle, remembered
for the resolver's life (an unknown device too): build one per batch of messages to
see registrations made since.
"""

from __future__ import annotations

from sqlalchemy import Engine

from wattline.domain.devices import EnergyMethod, RegisteredDevice
from wattline.store import device_registry


class RegistryDeviceResolver:
    def __init__(self, main_reader: Engine, organization_id: int):
        self._engine = main_reader
        self.organization_id = int(organization_id)
        self._known: dict[tuple[str, str], RegisteredDevice | None] = {}

    def resolve(self, esp32_name: str, device_id: str) -> RegisteredDevice | None:
        key = (esp32_name, device_id)
        if key not in self._known:
            with self._engine.connect() as conn:
                row = device_registry.device(conn, self.organization_id, esp32_name, device_id)
            self._known[key] = None if row is None else RegisteredDevice(
                asset_id=row["asset_id"], organization_id=row["organization_id"], esp32_name=row["esp32_name"],
                device_id=row["device_id"], classroom_id=row["classroom_id"], classroom=row["classroom"],
                timezone=row["timezone"], method=EnergyMethod(row["energy_method"]), switch=row["switch_id"],
                series=row["series"])
        return self._known[key]
