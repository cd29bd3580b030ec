"""Mondo Power: a scripted browser login (OIDC + PKCE) for a bearer token, then the
monitoring API.

The login (VENDOR-NOTES.md; LiveOne's unofficial client), against the identity server:

1. ``GET /Account/Login`` -> the form's ``__RequestVerificationToken`` and its cookie;
2. ``POST /Account/Login`` (``Email``, ``Password``, ``RememberMe``, the token) -> 302 and
   the identity cookie ("Invalid login attempt" on the page = wrong credentials);
3. ``GET /connect/authorize`` (``client_id=platform.frontend``, PKCE S256, scope
   ``openid profile mondoapi offline_access``, the platform's ``redirect_uri``) -> 302
   whose ``Location`` carries ``code`` (and our ``state``, checked);
4. ``POST /connect/token`` (``authorization_code`` + ``code_verifier``) -> ``access_token``
   (Bearer) with ``expires_in`` and a ``refresh_token``.

The token is renewed a minute before it expires, and when the API answers 401, with the
refresh token first (``grant_type=refresh_token``, rotated on use) and the whole login
again only if that is refused. Each step takes a slot of the account's limiter, is
logged as a call, and the login as a whole is retried on 5xx / 429 / timeouts.

Data (the vendor plant id is a **monitoring point group** id): ``fetch_latest`` reads
``/liveusage/widget/{group}`` and ``/subcircuit/{group}`` into one record at the live
usage's ``lastRecordedUtc`` (:mod:`.mapping`). Mondo has no history endpoint: a history
window yields the current record when it falls inside it, nothing older.
``list_plants`` walks organizations -> monitoring point groups.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from wattline import clock

from ..adapter import VendorAdapter
from ..errors import VendorAuthError, VendorError, VendorRateLimited, VendorRequestError, VendorUnavailable
from ..http import TokenInvalid, tls_context
from ..transport import vendor_http_client
from ..models import CallLog, FetchResult, VendorLimits, VendorPlant
from .credentials import MondoCredentials
from .mapping import BAD_LOGIN_TEXT, POINTS, parse_token_response, poll_record, verification_token

IDENTITY_URL = "https://identity.mondopower.com.au"
CLIENT_ID = "platform.frontend"
REDIRECT_URI = "https://platform.mondopower.com.au/signin-callback"
SCOPE = "openid profile mondoapi offline_access"
LIVE_PATH = "/liveusage/widget/{group}"
SUBCIRCUIT_PATH = "/subcircuit/{group}"


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(48)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class MondoAdapter(VendorAdapter):
    """One Mondo platform account."""

    vendor_type = "mondo"
    default_base_url = "https://api.mondopower.com.au"
    credentials_model = MondoCredentials
    points = POINTS
    # LiveOne polls every 2 minutes; no quota is documented
    limits = VendorLimits(max_range_s=86400, page_size=None, interval_s=120, calls_per_minute=30)

    def __init__(self, base_url: str | None, credentials: Any, *, identity_url: str | None = None,
                 **kw: Any) -> None:
        super().__init__(base_url, credentials, **kw)
        # the emulation serves identity and API on one origin; the real service does not
        if identity_url is None:
            identity_url = IDENTITY_URL if self.base_url == self.default_base_url else self.base_url
        self.identity_url = identity_url.rstrip("/")
        self._refresh_token: str | None = None

    # -- login ------------------------------------------------------------------------

    async def _login(self, calls: list[CallLog]) -> None:
        retrying = AsyncRetrying(stop=stop_after_attempt(len(self.retry_waits_s) + 1), wait=self._wait_before_retry,
                                 retry=retry_if_exception(self._is_retryable), reraise=True, sleep=self._sleep,
                                 before_sleep=self._log_retry)
        async for attempt in retrying:
            with attempt:
                await self._login_once(calls)

    async def _login_once(self, calls: list[CallLog]) -> None:
        async with vendor_http_client(timeout=self._timeout, follow_redirects=False,
                                      ssl_context=tls_context()) as browser:
            if self._refresh_token is not None:
                try:
                    return await self._token_grant(browser, calls, {
                        "grant_type": "refresh_token", "refresh_token": self._refresh_token, "client_id": CLIENT_ID})
                except VendorAuthError:
                    self._refresh_token = None  # expired or revoked: log in again
            verifier, challenge = pkce_pair()
            state = secrets.token_urlsafe(16)
            authorize = "/connect/authorize?" + urlencode({
                "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": SCOPE,
                "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
                "nonce": secrets.token_urlsafe(16)})
            page = await self._step(browser, calls, "GET", "/Account/Login", params={"ReturnUrl": authorize})
            form = {"Email": self.credentials.email, "Password": self.credentials.password.get_secret_value(),
                    "RememberMe": "true", "__RequestVerificationToken": verification_token(page.text)}
            done = await self._step(browser, calls, "POST", "/Account/Login", params={"ReturnUrl": authorize},
                                    data=form)
            if done.status_code == 200 and BAD_LOGIN_TEXT in done.text:
                raise VendorAuthError("login refused (wrong email or password)")
            if done.status_code != 302:
                raise VendorRequestError(f"login form answered HTTP {done.status_code}")
            redirect = await self._step(browser, calls, "GET", authorize)
            query = parse_qs(urlsplit(redirect.headers.get("location", "")).query)
            if redirect.status_code != 302 or "code" not in query:
                raise VendorAuthError("authorize did not return a code (login not accepted)")
            if query.get("state", [""])[0] != state:
                raise VendorAuthError("authorize returned another state")
            await self._token_grant(browser, calls, {
                "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier, "client_id": CLIENT_ID})

    async def _token_grant(self, browser: httpx.AsyncClient, calls: list[CallLog], form: dict[str, str]) -> None:
        answer = await self._step(browser, calls, "POST", "/connect/token", data=form)
        if answer.status_code == 400:
            body = self._json(answer)
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
            raise VendorAuthError(f"token grant refused ({error[:60] or 'HTTP 400'})", code=error[:60] or None)
        if answer.status_code != 200:
            raise VendorRequestError(f"token endpoint answered HTTP {answer.status_code}")
        token, expires_in, refresh = parse_token_response(self._json(answer))
        self._token = token
        self._token_expires_at = clock.now() + expires_in if expires_in else None
        self._refresh_token = refresh or self._refresh_token

    async def _step(self, browser: httpx.AsyncClient, calls: list[CallLog], method: str, path: str,
                    **kw: Any) -> httpx.Response:
        """One identity-server request: limiter slot, call log, 429/5xx/timeouts as errors."""
        await self.limiter.acquire()
        started_at, t0 = clock.now(), time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await browser.request(method, self.identity_url + path, **kw)
            status = response.status_code
            self._check_http(response)
            return response
        except httpx.TimeoutException as exc:
            error = f"timeout after {self.timeout_s:g} s ({type(exc).__name__})"
            raise VendorUnavailable(error) from None
        except httpx.TransportError as exc:
            error = f"connection failed ({type(exc).__name__})"
            raise VendorUnavailable(error) from None
        except VendorError as exc:
            error = str(exc)
            if isinstance(exc, VendorRateLimited):
                self.limiter.block_for(exc.retry_after_s)
            raise
        finally:
            calls.append(CallLog(method, urlsplit(path).path, status, (time.perf_counter() - t0) * 1000.0, 0, error,
                                 1, started_at))

    # -- API ----------------------------------------------------------------------------

    def _authorize(self, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        headers["Authorization"] = f"Bearer {self._token}"

    def _check(self, response: httpx.Response) -> Any:
        self._check_http(response)
        status = response.status_code
        if status == 401:
            raise TokenInvalid("access token refused (HTTP 401)")
        if status == 403:
            raise VendorRequestError("HTTP 403: not a monitoring point group of this account (a point id?)")
        if status >= 400:
            raise VendorRequestError(f"HTTP {status}")
        return self._json(response)

    async def test_connection(self) -> None:
        """Log in and list the organizations (the token must really work)."""
        await super().test_connection()
        await self._call("GET", "/monitoring/organizations", calls=[])

    async def fetch_latest(self, vendor_plant_id: str, timezone: str, *, now_ts: int | None = None) -> FetchResult:
        result = FetchResult()
        group = str(vendor_plant_id)
        live = await self._call("GET", LIVE_PATH.format(group=group), calls=result.calls, count=lambda p: 1)
        sub = await self._call("GET", SUBCIRCUIT_PATH.format(group=group), calls=result.calls,
                               count=lambda p: len(p.get("rows") or []) if isinstance(p, dict) else 0)
        result.records, result.rejected = poll_record(live, sub)
        return result

    async def _fetch_window(self, vendor_plant_id: str, start_ts: int, end_ts: int, timezone: str,
                            result: FetchResult) -> None:
        # no history endpoint: the current record, kept by _finish if it lies in the window
        if clock.now_s() < start_ts:
            return
        got = await self.fetch_latest(vendor_plant_id, timezone)
        result.records.extend(got.records)
        result.rejected.extend(got.rejected)
        result.calls.extend(got.calls)

    def windows(self, start_ts: int, end_ts: int, timezone: str) -> list[tuple[int, int]]:
        return [(start_ts, end_ts)]  # one poll answers any window

    async def list_plants(self) -> list[VendorPlant]:
        calls: list[CallLog] = []
        orgs = await self._call("GET", "/monitoring/organizations", calls=calls)
        plants: list[VendorPlant] = []
        for org in orgs if isinstance(orgs, list) else []:
            groups = await self._call("GET", f"/monitoring/organizations/{org['id']}/monitoringpointgroups",
                                      calls=calls)
            for g in groups if isinstance(groups, list) else []:
                plants.append(VendorPlant(vendor_plant_id=str(g.get("id")), name=str(g.get("name") or ""),
                                          timezone=g.get("timeZone"), raw=g))
        return plants


__all__ = ["MondoAdapter", "pkce_pair"]
