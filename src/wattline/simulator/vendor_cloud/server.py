"""Running the emulated clouds: in the foreground (CLI) or on a background thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from .app import create_app
from .config import DEFAULT_HOST, DEFAULT_PORT, CloudConfig
from .state import CloudState


#: idle connections are kept this long (s), as the vendors' load balancers do (60-350 s),
#: longer than the client's 75 s, so that the client closes an idle one first and never
#: reuses one the server is closing (uvicorn's default, 5 s, made every minute poll
#: open a new connection)
KEEPALIVE_S = 90


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    fault_rate: float = 0.0,
    latency_ms: float = 0.0,
    *,
    seed: int = 0,
    bench_mode: bool | None = None,
    config: CloudConfig | None = None,
    log_level: str = "info",
) -> None:
    """Serve every vendor on ``host:port`` until interrupted (``config`` overrides the rest).

    ``latency_ms`` 0 leaves ``WATTLINE_EMULATOR_LATENCY_MS`` in force; ``bench_mode``
    None leaves ``WATTLINE_EMULATOR_BENCH`` in force (see :mod:`.config`)."""
    if config is None:
        kw = {} if bench_mode is None else {"bench_mode": bench_mode}
        if latency_ms:
            kw["latency_ms"] = latency_ms
        config = CloudConfig(fault_rate=fault_rate, seed=seed, **kw)
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_keep_alive=KEEPALIVE_S)


class BackgroundCloud:
    """The emulated clouds served by uvicorn on a daemon thread.

    ``port=0`` picks a free port. Use as a context manager, or ``start()``/``stop()``::

        with BackgroundCloud(CloudConfig(fault_rate=0.2)) as cloud:
            adapter = SolarmanAdapter(cloud.base_url, DEFAULT_CREDENTIALS["solarman"])
            ...
            cloud.state.stats.count("solarman", "history")
    """

    def __init__(self, config: CloudConfig | None = None, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.config = config or CloudConfig()
        self.app = create_app(self.config)
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> CloudState:
        return self.app.state.cloud

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the cloud is not running")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "BackgroundCloud":
        # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets
        # of such a listener, and without it every answer stalls ~40 ms (Nagle + delayed ACK)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,  # "slow" faults must not hold shutdown long
            timeout_keep_alive=KEEPALIVE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"vendor-cloud-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulated vendor cloud did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = self._thread = None

    def __enter__(self) -> "BackgroundCloud":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
