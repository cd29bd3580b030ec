"""Vendor cloud adapters: one package per vendor, a registry keyed by vendor type.

* :mod:`.adapter` -- the protocol every adapter follows (declared points and limits,
  a pydantic credentials model, ``test_connection``, ``fetch_history``, ``fetch_latest``);
* :mod:`.http` -- auth and token refresh, retries honouring Retry-After, the shared
  per-account limiter, the per-call log; :mod:`.pagination` -- paging and range splits;
* :mod:`.normalize` -- vendor records to the pipeline's ReadingBatch;
* ``solarman/``, ``sungrow/`` -- one package per vendor (adapter, credentials, mapping).

Adding a vendor: a package ``<vendor>/`` with ``credentials.py`` (a
:class:`VendorCredentials` model: unknown keys are refused), ``mapping.py`` (its
:class:`VendorPointSpec` s and the parsing of its answers, pure functions tested
against ``vendor-fixtures/``) and ``adapter.py`` (a :class:`VendorAdapter`: vendor
type, base URL, limits, points, credentials model; the three HTTP hooks ``_login``,
``_authorize``, ``_check``; ``_fetch_window`` for one range-limited window), plus one
line in ``registry._ADAPTERS`` and an emulation under ``simulator/vendor_cloud/``.

Use::

    from wattline.sources.vendors import get_adapter_class, RateLimiter

    cls = get_adapter_class("solarman")
    async with cls(base_url, credentials, limiter=shared_limiter) as adapter:
        result = await adapter.fetch_history("64786338", start_ts, end_ts, "Asia/Kolkata")
"""

from .adapter import VendorAdapter
from .credentials import VendorCredentials, validate_credentials
from .errors import (
    InvalidCredentials,
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
    RejectedRecord,
    VendorLimits,
    VendorPlant,
    VendorPointSpec,
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
    "InvalidCredentials",
    "QuotaExhausted",
    "RateLimiter",
    "RateLimiterRegistry",
    "RejectedRecord",
    "UnknownVendorError",
    "VendorAdapter",
    "VendorAuthError",
    "VendorCredentials",
    "VendorError",
    "VendorLimits",
    "VendorPlant",
    "VendorPointSpec",
    "VendorRateLimited",
    "VendorRecord",
    "VendorRequestError",
    "VendorUnavailable",
    "create_adapter",
    "get_adapter_class",
    "validate_credentials",
    "vendor_types",
]
