"""Enphase Enlighten API v4 (``api.enphaseenergy.com``), OAuth 2.0 authorization code.

* **Authorization** (once, by the system owner): ``GET /oauth/authorize?response_type=
  code&client_id=…&redirect_uri=…&state=…`` → the owner approves → redirect to
  ``redirect_uri?code=…&state=…``. Wattline's side is ``api/routes/enphase_oauth.py``.
* **Tokens:** ``POST /oauth/token`` with HTTP Basic ``client_id:client_secret`` and
  ``grant_type=authorization_code`` (``code``, ``redirect_uri``) or ``grant_type=
  refresh_token``; the answer carries ``access_token`` (about a day), ``refresh_token``
  (about a month) and ``expires_in``. The grant goes in the form body, never the URL,
  so no log line holds it. A refresh may rotate the refresh token: the adapter keeps the
  newest and hands it to ``on_credentials`` so the caller stores it (encrypted).
  The access token is refreshed a minute before it expires, and once more when the API
  answers 401 (:class:`~wattline.sources.vendors.http.TokenInvalid`).
* **API calls** carry the application's ``key`` (query) and ``Authorization: Bearer``.
* **Limits (free "Watt" plan):** 10 calls per minute and 1,000 per month per
  application; beyond them 429. The limiter paces to 10/min and raises
  :class:`QuotaExhausted` before the 1,001st call of a month (OAuth calls do not count
  and do not take a slot).
* **Telemetry:** ``/api/v4/systems/{id}/telemetry/production_micro?start_at=&granularity=
  day|week`` → 15-minute intervals ending after ``start_at`` for a day or a week. History
  is fetched a week per call (52 calls a year of backfill), so a year fits the monthly
  quota with room for polling.

Units and the point table: :mod:`.mapping`.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from typing import Any, Callable
from urllib.parse import urlencode

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorAuthError, VendorRequestError, VendorUnavailable
from ..http import TokenInvalid
from ..models import CallLog, FetchResult, VendorLimits, VendorPlant
from ..pagination import all_pages
from ..parsing import BadValue, to_number
from .credentials import EnphaseCredentials
from .mapping import POINTS, count_intervals, parse_production_micro, system_to_plant

INTERVAL_S = 900
DAY = 86400
WEEK = 7 * DAY
TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
# A refresh grant spends the refresh token as the server reads it: an answer given up on
# leaves only the spent one (the owner must authorise again). So a grant waits longer
# than an API call, and runs on even when the poll that asked for it times out (http.py).
TOKEN_TIMEOUT_S = 60.0
NOT_AUTHORIZED = ("Enphase account has no tokens yet: the system owner must authorize Wattline "
                  "(GET /api/auth/enphase/auth?account_id=…)")


class RedactSecrets(logging.Filter):
    """httpx logs each request's URL at INFO: hide the application key and any grant in it."""

    _PATTERN = re.compile(r"((?:key|code|refresh_token|access_token|client_secret)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._PATTERN.sub(r"\1***", str(a)) if isinstance(a, (str, httpx.URL)) else a
                                for a in record.args)
        return True


logging.getLogger("httpx").addFilter(RedactSecrets())


class EnphaseAdapter(VendorAdapter):
    """Enphase production (15-minute micro-inverter telemetry) over OAuth 2.0."""

    vendor_type = "enphase"
    default_base_url = "https://api.enphaseenergy.com"
    limits = VendorLimits(
        max_range_s=WEEK - INTERVAL_S,  # a week per call (see _fetch_window)
        page_size=None,
        interval_s=INTERVAL_S,
        calls_per_minute=10,  # the free "Watt" plan
        calls_per_day=None,
        calls_per_month=1000,
    )
    points = POINTS
    credentials_model = EnphaseCredentials
    credentials: EnphaseCredentials
    systems_page_size = 100
    # a hint for the poller: hourly keeps one system within the monthly quota
    # (~14 daylight calls a day = ~420 a month, leaving room for backfill)
    poll_interval_s = 3600

    def __init__(self, *args: Any, on_credentials: Callable[[EnphaseCredentials], None] | None = None,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: called with the new credentials after every token grant, to store them
        self.on_credentials = on_credentials
        c = self.credentials
        if c.access_token is not None:
            self._token = c.access_token.get_secret_value()
            self._token_expires_at = float(c.access_expires_at) if c.access_expires_at is not None else None
        self.token_calls = 0  # token grants asked for (tests, progress lines)

    # -- OAuth ----------------------------------------------------------------------

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """Where to send the owner's browser to approve Wattline."""
        query = urlencode({"response_type": "code", "client_id": self.credentials.client_id,
                           "redirect_uri": redirect_uri, "state": state})
        return f"{self.base_url}{AUTHORIZE_PATH}?{query}"

    def _basic(self) -> str:
        c = self.credentials
        pair = f"{c.client_id}:{c.client_secret.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    async def _token_once(self, form: dict[str, str], calls: list[CallLog], attempt: int) -> dict:
        """One POST to the token endpoint (not rate-limited: OAuth calls are outside the plan)."""
        started_at, t0 = clock.now(), time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._http().post(
                self.base_url + TOKEN_PATH, data=form, timeout=max(self.timeout_s, TOKEN_TIMEOUT_S),
                headers={"Authorization": self._basic(), "Accept": "application/json"})
            status = response.status_code
            if status >= 500 or status == 429:
                raise VendorUnavailable(f"token endpoint: HTTP {status}")
            payload = self._json(response)
            if status >= 400 or not isinstance(payload, dict):
                kind = payload.get("error") if isinstance(payload, dict) else None
                raise VendorAuthError(f"token grant refused (HTTP {status})", code=str(kind) if kind else None)
            return payload
        except httpx.TimeoutException:
            error = f"timeout after {max(self.timeout_s, TOKEN_TIMEOUT_S):g} s"
            raise VendorUnavailable(error) from None
        except httpx.TransportError as exc:
            error = f"connection failed ({type(exc).__name__})"
            raise VendorUnavailable(error) from None
        except VendorUnavailable as exc:
            error = str(exc)
            raise
        except VendorAuthError as exc:
            error = str(exc)
            raise
        finally:
            self.token_calls += 1
            calls.append(CallLog("POST", TOKEN_PATH, status, (time.perf_counter() - t0) * 1000.0, 0, error,
                                 attempt, started_at))

    async def _grant(self, form: dict[str, str], calls: list[CallLog]) -> EnphaseCredentials:
        retrying = AsyncRetrying(stop=stop_after_attempt(len(self.retry_waits_s) + 1),
                                 wait=lambda s: self.retry_waits_s[min(s.attempt_number - 1,
                                                                       len(self.retry_waits_s) - 1)],
                                 retry=retry_if_exception_type(VendorUnavailable), reraise=True, sleep=self._sleep)
        async for attempt in retrying:
            with attempt:
                payload = await self._token_once(form, calls, attempt.retry_state.attempt_number)
        return self._apply_tokens(payload)

    def _apply_tokens(self, payload: dict) -> EnphaseCredentials:
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise VendorAuthError("token answer without access_token")
        try:
            ttl = to_number(payload.get("expires_in", 3600), "expires_in")
        except BadValue:
            ttl = 3600.0
        refresh = payload.get("refresh_token")
        expires_at = int(clock.now() + ttl)
        update: dict[str, Any] = {"access_token": access, "access_expires_at": expires_at}
        if isinstance(refresh, str) and refresh:
            update["refresh_token"] = refresh  # rotated: the old one may no longer work
        self.credentials = EnphaseCredentials.model_validate({**self.credentials.to_storage(), **update})
        self._token, self._token_expires_at = access, float(expires_at)
        if self.on_credentials is not None:
            self.on_credentials(self.credentials)
        return self.credentials

    async def exchange_code(self, code: str, redirect_uri: str, calls: list[CallLog] | None = None
                            ) -> EnphaseCredentials:
        """Trade an authorization code for tokens; the new credentials (also kept here)."""
        return await self._grant({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
                                 calls if calls is not None else [])

    async def _login(self, calls: list[CallLog]) -> None:
        refresh = self.credentials.refresh_token
        if refresh is None:
            raise VendorAuthError(NOT_AUTHORIZED)
        await self._grant({"grant_type": "refresh_token", "refresh_token": refresh.get_secret_value()}, calls)

    # -- HTTP hooks -----------------------------------------------------------------------

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        headers["Authorization"] = f"Bearer {self._token}"

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)
        status = response.status_code
        if status == 401:
            raise TokenInvalid("access token refused (HTTP 401)")
        if status >= 400:
            payload = None
            try:
                payload = response.json()
            except ValueError:
                pass
            details = payload.get("details") if isinstance(payload, dict) else None
            raise VendorRequestError(f"HTTP {status}: {details or 'request refused'}", code=str(status))
        return self._json(response)

    def _key(self) -> dict[str, str]:
        return {"key": self.credentials.api_key.get_secret_value()}

    async def test_connection(self) -> None:
        """The tokens must really work: refresh if needed, then list the systems."""
        if not self.credentials.authorized:
            raise VendorAuthError(NOT_AUTHORIZED)
        await self.list_plants()

    # -- data -------------------------------------------------------------------------------

    async def _fetch_window(
        self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str, result: FetchResult
    ) -> None:
        # intervals come back by their end, for those ending after start_at: ask from the
        # interval boundary before the window so its first interval is included
        start_at = (start_ts // INTERVAL_S) * INTERVAL_S - INTERVAL_S
        granularity = "day" if end_ts - start_at <= DAY else "week"
        payload = await self._call(
            "GET", f"/api/v4/systems/{vendor_plant_id}/telemetry/production_micro", calls=result.calls,
            params={**self._key(), "start_at": start_at, "granularity": granularity}, count=count_intervals)
        records, rejected = parse_production_micro(payload)
        result.records.extend(records)
        result.rejected.extend(rejected)

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []
        size = self.systems_page_size

        async def page(number: int) -> tuple[list, int]:
            def count(p: Any) -> int:
                if not isinstance(p, dict) or not isinstance(p.get("systems"), list):
                    raise VendorUnavailable("systems answer without a systems list")
                return len(p["systems"])

            payload = await self._call("GET", "/api/v4/systems", calls=calls,
                                       params={**self._key(), "page": number, "size": size}, count=count)
            return payload["systems"], int(to_number(payload.get("total", 0), "total"))

        return [system_to_plant(item) for item in await all_pages(page)]
