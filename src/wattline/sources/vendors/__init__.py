"""Vendor cloud adapters: one module per vendor, a registry keyed by vendor type.

Use::

    from wattline.sources.vendors import get_adapter_class, RateLimiter

    cls = get_adapter_class("solarman")
    async with cls(base_url, credentials, limiter=shared_limiter) as adapter:
        result = await adapter.fetch_telemetry("64786338", start_ts, end_ts, "Asia/Kolkata")
"""

from .base import VendorAdapter
from .errors import (
    QuotaExhausted,
    UnknownVendorError,
    VendorAuthError,
    VendorError,
    VendorRateLimited,
    VendorRequestError,
    VendorUnavailable,
)
from .models import (
    ENERGY_TODAY,
    ENERGY_TOTAL,
    POWER,
    CallLog,
    FetchResult,
    PointSpec,
    RejectedRecord,
    VendorLimits,
    VendorPlant,
    VendorRecord,
)
from .ratelimit import RateLimiter, RateLimiterRegistry
from .registry import create_adapter, get_adapter_class, vendor_types

__all__ = [
    "ENERGY_TODAY",
    "ENERGY_TOTAL",
    "POWER",
    "CallLog",
    "FetchResult",
    "PointSpec",
    "QuotaExhausted",
    "RateLimiter",
    "RateLimiterRegistry",
    "RejectedRecord",
    "UnknownVendorError",
    "VendorAdapter",
    "VendorAuthError",
    "VendorError",
    "VendorLimits",
    "VendorPlant",
    "VendorRateLimited",
    "VendorRecord",
    "VendorRequestError",
    "VendorUnavailable",
    "create_adapter",
    "get_adapter_class",
    "vendor_types",
]
