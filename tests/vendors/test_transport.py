"""The vendor clients' transport (httpx over aiohttp): what a misbehaving server does
comes out as the httpx errors the adapters handle, cookies are sent once, connections
are kept between calls. Against small real servers on loopback."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from wattline.sources.vendors.http import tls_context
from wattline.sources.vendors.transport import vendor_http_client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawServer:
    """An HTTP/1.1 server on loopback answering each request by ``behaviour``; records
    the request heads and the connections it accepted."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.heads: list[str] = []
        self.connections = 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head.decode("latin-1"))
                if self.behaviour == "drop":  # closes without an answer
                    break
                if self.behaviour == "slow":
                    await asyncio.sleep(5)
                    break
                if self.behaviour == "garbage":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nonsense\r\n\r\n{}")
                    await writer.drain()
                    break
                if self.behaviour == "short":  # promises 100 bytes, sends 2, closes
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}")
                    await writer.drain()
                    break
                body = b'{"ok": true}'
                cookie = b"Set-Cookie: sid=abc123; Path=/\r\n" if "/login" in head.decode("latin-1") else b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + cookie
                             + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def client(**kw) -> httpx.AsyncClient:
    return vendor_http_client(timeout=httpx.Timeout(kw.pop("timeout_s", 2.0)), ssl_context=tls_context(), **kw)


@pytest.mark.parametrize("behaviour, error", [
    ("drop", httpx.RemoteProtocolError),
    ("garbage", httpx.RemoteProtocolError),
    ("short", httpx.TransportError),
])
def test_a_broken_answer_is_an_httpx_transport_error_not_a_timeout(behaviour, error):
    async def main():
        async with RawServer(behaviour) as srv, client() as c:
            with pytest.raises(error) as got:
                await c.get(srv.url + "/x")
            return got.value

    exc = asyncio.run(main())
    assert isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.TimeoutException)
    assert "127.0.0.1" not in str(exc)  # no URL in the message (the adapters log it)


def test_a_refused_connection_is_a_connect_error_and_a_slow_server_a_timeout():
    async def main():
        async with client(timeout_s=0.3) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get(f"http://127.0.0.1:{free_port()}/x")
            async with RawServer("slow") as srv:
                with pytest.raises(httpx.TimeoutException):
                    await c.get(srv.url + "/x")

    asyncio.run(main())


def test_cookies_are_httpx_s_sent_once_and_the_connection_is_kept():
    async def main():
        async with RawServer("ok") as srv, client() as c:
            await c.post(srv.url + "/login")
            for _ in range(3):
                r = await c.get(srv.url + "/data")
                assert r.json() == {"ok": True}
            return srv

    srv = asyncio.run(main())
    later = [h for h in srv.heads if h.startswith("GET /data")]
    assert len(later) == 3
    for head in later:  # one Cookie header with the session cookie, not one per jar
        cookies = [line for line in head.split("\r\n") if line.lower().startswith("cookie:")]
        assert cookies == ["cookie: sid=abc123"] or cookies == ["Cookie: sid=abc123"], head
    assert srv.connections == 1  # four calls over one kept-alive connection
