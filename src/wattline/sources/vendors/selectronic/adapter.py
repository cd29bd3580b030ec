"""Selectronic select.live (``https://select.live``), the SP PRO's cloud portal.

Written against ``vendor-fixtures/selectronic-select-live/`` and VENDOR-NOTES.md:

* **Login:** ``POST /login`` with the form ``email`` / ``pwd``. Success is a 302 with
  the ``mojolicious`` session cookie; a refused login is 200 with "Bad email address
  or password". The session lives about 30 minutes: the adapter keeps it for
  ``SESSION_S`` and renews it a minute early (``http.py``), so minute polling logs in
  about twice an hour, never every poll; adapters of one account in one process
  share the session. A data call that answers 401/403, a
  redirect to the login page or the login page itself means the session ended
  early: one fresh login, then the call again.
* **Data:** ``GET /dashboard/hfdata/{systemNumber}`` -> one record of live values and
  today/lifetime counters (units and signs: :mod:`.mapping`).
* **Outages:** 500/503 around minutes 48-52 of each hour (the vendor calls it normal)
  and 504s just after midnight Sydney time: retried by the shared policy
  (at once, then 5, 15, 30 s), so a poll in the window usually lands after it.

**History / backfill:** select.live offers no history API in any source we have, only
the live values and the ``*_today`` / ``*_total`` counters. ``fetch_history`` therefore
returns the current record when the range reaches the present, and nothing for a
range wholly in the past; backfill has nothing to fetch. No energy is lost over an
outage all the same: the lifetime counters are cumulative, so the ledger's first delta
after a gap carries the energy of the whole gap (its shape within the gap is unknown).
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorError, VendorRequestError
from ..http import TokenInvalid
from ..models import CallLog, FetchResult, VendorLimits
from .credentials import SelectronicCredentials
from .mapping import HFDATA_PATH, LOGIN_PATH, POINTS, SESSION_COOKIE, count_items, is_login_page, parse_hfdata, parse_login

SESSION_S = 30 * 60  # select.live's session life (about 30 minutes)

# live sessions by (base URL, hash of email + password): adapters of one account share
# the portal session wherever they run in this process (no secret is kept in the key)
_SESSIONS: dict[tuple[str, str], tuple[str, float]] = {}


class SelectronicAdapter(VendorAdapter):
    """Live values of an SP PRO through select.live, one record per poll."""

    vendor_type = "selectronic"
    default_base_url = "https://select.live"
    # No published limit; LiveOne polls every minute. A minute of history per call
    # (there is no history call) and a modest pace.
    limits = VendorLimits(
        max_range_s=86400,
        page_size=None,
        interval_s=60,
        calls_per_minute=20,
        calls_per_day=None,
        calls_per_month=None,
    )
    points = POINTS
    credentials_model = SelectronicCredentials
    credentials: SelectronicCredentials
    _fresh_login = False
    _last_used: str | None = None

    # -- auth -----------------------------------------------------------------------

    def _session_key(self) -> tuple[str, str]:
        secret = f"{self.credentials.email}\0{self.credentials.password.get_secret_value()}"
        return self.base_url, hashlib.sha256(secret.encode()).hexdigest()

    async def _login(self, calls: list[CallLog]) -> None:
        # another adapter of the same account (a job of its own) may hold a live session
        shared = None if self._fresh_login else _SESSIONS.get(self._session_key())
        if shared is not None and shared[0] != self._last_used and clock.now() < shared[1] - 60:
            self._token, self._token_expires_at = shared
            return
        form = {"email": self.credentials.email, "pwd": self.credentials.password.get_secret_value()}
        self._token = await self._send("POST", LOGIN_PATH, calls=calls, auth=False, data=form)
        self._token_expires_at = clock.now() + SESSION_S
        _SESSIONS[self._session_key()] = (self._token, self._token_expires_at)

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        self._last_used = self._token  # a refusal of this call ends this session
        headers["Cookie"] = f"{SESSION_COOKIE}={self._token}"

    async def test_connection(self) -> None:
        """A real login with the credentials (a shared session proves nothing)."""
        self._fresh_login = True
        try:
            await super().test_connection()
        finally:
            self._fresh_login = False

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)  # 429, 5xx (the minute-48-52 window)
        if response.request.url.path == LOGIN_PATH:
            return parse_login(response)
        if is_login_page(response):
            raise TokenInvalid(f"session refused (HTTP {response.status_code})")
        if response.status_code == 404:
            raise VendorRequestError("unknown system number (HTTP 404)")
        if response.status_code >= 400:
            raise VendorRequestError(f"HTTP {response.status_code}")
        return self._json(response)

    # -- data -----------------------------------------------------------------------

    async def _hfdata(self, system: str, result: FetchResult) -> None:
        payload = await self._call("GET", HFDATA_PATH.format(system=system), calls=result.calls, count=count_items)
        records, rejected = parse_hfdata(payload)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        # only the present exists: ask when the window reaches it (the inverter's
        # timestamp may lag "now" by a few minutes)
        now = clock.now()
        if start_ts <= now and end_ts > now - 10 * self.limits.interval_s:
            await self._hfdata(vendor_plant_id, result)

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *,
                           now_ts: int | None = None) -> FetchResult:
        """The record ``hfdata`` answers now (one call, plus a login when needed)."""
        result = FetchResult()
        try:
            await self._hfdata(str(vendor_plant_id), result)
        except VendorError as exc:
            exc.calls = list(result.calls)
            raise
        return result
