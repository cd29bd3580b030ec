"""Broker addresses: ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS).

A bare ``host`` or ``host:port`` is read as ``mqtt://``. The password never appears in
``str()`` or ``repr()`` of the result, so an address can be logged as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:1883`` → :class:`BrokerAddress`; raises ``ValueError`` with the rule broken."""
    text = url.strip()
    if not text:
        raise ValueError("empty broker URL")
    if "://" not in text:
        text = f"mqtt://{text}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"broker URL scheme must be mqtt:// or mqtts://, not {parts.scheme}://")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a broker URL is mqtt://host:port, without a path or query")
    if not parts.hostname:
        raise ValueError("broker URL without a host")
    try:
        port = parts.port
    except ValueError:  # urlsplit raises on a port that is not a number in 0..65535
        raise ValueError("broker URL port must be a number from 1 to 65535") from None
    if port is None:
        port = DEFAULT_PORTS[scheme]
    elif port == 0:
        raise ValueError("broker URL port must be a number from 1 to 65535")
    return BrokerAddress(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=scheme == "mqtts",
    )
