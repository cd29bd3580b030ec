"""The HTTP clients of the vendor adapters: httpx's API over aiohttp's connections.

The adapters speak httpx (requests, responses, timeouts, errors: ARCHITECTURE.md);
underneath, :class:`VendorTransport` sends the bytes with aiohttp (httpx-aiohttp, by
an httpx maintainer). Bare GETs against the emulated clouds, 10,000 at 2,000 at once
(``bench/poll.py``'s baseline, which runs both): httpx's own transport (httpcore on
anyio) 3.16 ms of CPU a call and 32.8 s, this one 1.21 ms and 19.8 s, since the
caller's CPU was what held the calls back. At 10,000 systems polled a minute that is
most of a core. ``WATTLINE_VENDOR_HTTP=httpx`` puts httpx's own transport back (A/B, debugging).

Every aiohttp error comes out as the httpx error the adapters handle: a refused or
dropped connection as a transport error, a timeout as a timeout. The body is read
inside the transport (vendor answers are small), so an error while reading it is
mapped too.
"""

from __future__ import annotations

import asyncio
import os
import ssl

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

#: idle connections are kept this long (s): a system polled every minute finds its
#: account's connection still open (httpx's default, 5 s, made a new one each poll)
KEEPALIVE_S = 75.0


class VendorTransport(AiohttpTransport):
    """aiohttp under an httpx client; cookies stay httpx's (aiohttp keeps none)."""

    def __init__(self, *, ssl_context: ssl.SSLContext, max_connections: int,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=keepalive_s)
        super().__init__(verify=ssl_context, limits=limits, client=self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        # made on first use, inside the loop that will run it (aiohttp binds to it)
        connector = aiohttp.TCPConnector(limit=self.limits.max_connections,
                                         keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context)
        # httpx sends the cookies (a login's session cookie); a second jar here would resend them
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
            await response.aread()
            return response
        except httpx.ConnectTimeout as exc:
            # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout: only
            # a real connect timeout stays one; a refused or dropped connection is not slow
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(type(cause).__name__, request=request) from cause
            if cause is not None and not isinstance(cause, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
                raise httpx.RemoteProtocolError(type(cause).__name__, request=request) from cause
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(type(exc).__name__, request=request) from exc
        except aiohttp.ClientError as exc:  # a malformed answer, a protocol error: no URL in the message
            raise httpx.RemoteProtocolError(type(exc).__name__, request=request) from exc


def transport_name() -> str:
    """``aiohttp`` (the default) or ``httpx`` (``WATTLINE_VENDOR_HTTP``)."""
    return "httpx" if os.environ.get("WATTLINE_VENDOR_HTTP", "aiohttp").strip().lower() == "httpx" else "aiohttp"


def vendor_http_client(*, timeout: httpx.Timeout, ssl_context: ssl.SSLContext,
                       max_connections: int = 100, transport: str | None = None, **kw) -> httpx.AsyncClient:
    """An httpx client for vendor calls (``transport``: ``aiohttp`` or ``httpx``, default
    :func:`transport_name`; ``kw``: httpx.AsyncClient's, e.g. ``follow_redirects``)."""
    if (transport or transport_name()) == "httpx":
        return httpx.AsyncClient(timeout=timeout, verify=ssl_context,
                                 limits=httpx.Limits(max_connections=max_connections), **kw)
    return httpx.AsyncClient(timeout=timeout, transport=VendorTransport(ssl_context=ssl_context,
                                                                        max_connections=max_connections), **kw)
