"""Errors raised by vendor adapters and the shared rate limiter.

Only :class:`VendorUnavailable` and :class:`VendorRateLimited` are retried by an
adapter; everything else is raised at once. An error that escapes
``fetch_history`` carries the call log (``calls``) and whatever was fetched before
it (``partial``) so the caller can write its sync-log rows and keep good records.
Messages never contain credentials or tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .models import CallLog, FetchResult


class VendorError(Exception):
    """Any failure talking to a vendor cloud (not retried unless a subclass says so)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the vendor's own error code, when it sent one
        self.calls: list[CallLog] = []
        self.partial: FetchResult | None = None

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code else self.message


class VendorAuthError(VendorError):
    """The vendor refused the credentials (wrong key, user or password)."""


class VendorRateLimited(VendorError):
    """HTTP 429: the vendor asked us to wait ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = float(retry_after_s)


class QuotaExhausted(VendorError):
    """The per-day or per-month call quota is used up until ``resets_at_ts`` (UTC epoch s).

    Raised by the rate limiter before any call is made, so a backfill can pause and
    resume when the quota refreshes.
    """

    def __init__(self, message: str, resets_at_ts: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.resets_at_ts = int(resets_at_ts)


class VendorUnavailable(VendorError):
    """5xx, timeout, connection failure or an unreadable body: worth retrying."""


class VendorRequestError(VendorError):
    """The vendor rejected the request itself (range too long, unknown plant, bad parameter)."""


class UnknownVendorError(VendorError, KeyError):
    """No adapter is registered for the vendor type."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.message


class InvalidCredentials(VendorAuthError):
    """Credentials that do not fit the vendor's model (a key missing, unknown or empty).

    The message names the keys, never their values.
    """
