"""Adapter classes by vendor type (``"solarman"``, ``"sungrow"``), one package per vendor."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .adapter import VendorAdapter
from .errors import UnknownVendorError

# vendor type -> "module:Class"; imported on first use so one vendor's import cost or
# failure never affects another
_ADAPTERS: dict[str, str] = {
    "solarman": "wattline.sources.vendors.solarman:SolarmanAdapter",
    "sungrow": "wattline.sources.vendors.sungrow:SungrowAdapter",
    "enphase": "wattline.sources.vendors.enphase:EnphaseAdapter",
    "amber": "wattline.sources.vendors.amber:AmberAdapter",
    "selectronic": "wattline.sources.vendors.selectronic:SelectronicAdapter",
    "solaredge": "wattline.sources.vendors.solaredge:SolarEdgeAdapter",
    "fronius": "wattline.sources.vendors.fronius:FroniusAdapter",
    "mondo": "wattline.sources.vendors.mondo:MondoAdapter",
}


def vendor_types() -> list[str]:
    """The registered vendor types, sorted."""
    return sorted(_ADAPTERS)


def get_adapter_class(vendor_type: str) -> type[VendorAdapter]:
    """The adapter class for ``vendor_type`` (case-insensitive); UnknownVendorError if none."""
    key = str(vendor_type).strip().lower()
    target = _ADAPTERS.get(key)
    if target is None:
        raise UnknownVendorError(
            f"no adapter for vendor type {vendor_type!r}; known types: {', '.join(vendor_types())}"
        )
    module_name, class_name = target.split(":")
    return getattr(import_module(module_name), class_name)


def create_adapter(vendor_type: str, base_url: str | None, credentials: dict, **kw: Any) -> VendorAdapter:
    """An adapter instance; ``base_url=None`` means the vendor's real cloud."""
    cls = get_adapter_class(vendor_type)
    return cls(base_url or cls.default_base_url, credentials, **kw)


def register(vendor_type: str, target: str) -> None:
    """Register another adapter as ``"package.module:Class"`` (plugins, tests)."""
    _ADAPTERS[vendor_type.strip().lower()] = target
