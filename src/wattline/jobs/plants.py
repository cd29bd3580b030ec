"""What a job needs to know about a vendor plant (read from the registry by store/)."""

from wattline.store.vendor_plants import (  # noqa: F401 - the names jobs and routes use
    PlantNotFound,
    PlantNotSyncable,
    VendorPlantInfo,
    load_plant,
    load_plants,
)

__all__ = ("PlantNotFound", "PlantNotSyncable", "VendorPlantInfo", "load_plant", "load_plants")
