"""What every emulated endpoint does before its own work: latency, faults, rate limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .state import CallRecord, CloudState

SERVER_ERROR_HTML = "<html><head><title>{code}</title></head><body><h1>{code} {text}</h1></body></html>"
_REASONS = {500: "Internal Server Error", 503: "Service Temporarily Unavailable"}


def cloud(request: Request) -> CloudState:
    return request.app.state.cloud


async def read_json(request: Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None if it is not one."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def too_many_requests(retry_after_s: int, body: dict | str) -> Response:
    headers = {"Retry-After": str(int(retry_after_s))}
    if isinstance(body, dict):
        return JSONResponse(body, status_code=429, headers=headers)
    return Response(body, status_code=429, headers=headers, media_type="text/plain")


def server_error(code: int) -> Response:
    html = SERVER_ERROR_HTML.format(code=code, text=_REASONS.get(code, "Error"))
    return Response(html, status_code=code, media_type="text/html")


async def before_call(
    request: Request, vendor: str, endpoint: str, rate_limited_body: dict | str
) -> tuple[Response | None, str | None]:
    """Apply latency and an injected fault.

    Returns (a response to send instead of the real one, or None; the fault drawn).
    ``"slow"`` holds the call for ``slow_delay_s`` and then lets it proceed;
    ``"malformed"`` is returned for the data handler to apply.
    """
    state = cloud(request)
    cfg = state.config
    await request.body()  # read (and cache) it now: a held call's client may be gone later
    if cfg.latency_ms > 0:
        await asyncio.sleep(cfg.latency_ms / 1000.0)
    fault = state.faults.draw()
    if fault == "429":
        state.stats.add(CallRecord(vendor, endpoint, 429, fault))
        return too_many_requests(cfg.retry_after_s, rate_limited_body), fault
    if fault in ("500", "503"):
        state.stats.add(CallRecord(vendor, endpoint, int(fault), fault))
        return server_error(int(fault)), fault
    if fault == "slow":
        await asyncio.sleep(cfg.slow_delay_s)
    return None, fault


def account_limited(
    state: CloudState, vendor: str, endpoint: str, account: str, rate_limited_body: dict | str
) -> Response | None:
    """429 when the account is over the cloud's own per-minute limit."""
    retry_after = state.minute_limiter.retry_after(f"{vendor}:{account}")
    if retry_after is None:
        return None
    state.stats.add(CallRecord(vendor, endpoint, 429, error="rate_limit"))
    return too_many_requests(retry_after, rate_limited_body)
