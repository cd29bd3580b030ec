"""A test-owned Mosquitto: its own port, its own directory, restartable.

``MosquittoBroker(workdir)`` renders ``tests/mosquitto/test.conf`` into ``workdir`` on a
free loopback port and runs ``mosquitto -c`` on it; ``restart()`` stops it (SIGTERM, so
it saves its persistence file) and starts it again on the same port and directory, so
sessions and queued messages survive. Never the shared broker on 1883.

The ``mqtt_broker`` fixture (import it into a test module) yields a started broker. A
missing mosquitto binary fails the test with CI=true and skips it otherwise, as
``service_missing`` in tests/conftest.py does for the other services.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from string import Template

import pytest

CONF_TEMPLATE = Path(__file__).resolve().parent / "mosquitto" / "test.conf"
IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class MosquittoBroker:
    def __init__(self, workdir: Path, port: int | None = None, binary: str | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.binary = binary or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_conf(self) -> None:
        text = Template(CONF_TEMPLATE.read_text()).substitute(
            port=self.port, dir=str(self.workdir), user=getpass.getuser())
        self.conf_path.write_text(text)

    def start(self, timeout_s: float = 10.0) -> "MosquittoBroker":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._write_conf()
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()}\n{self.log_tail()}")
            if port_open(self.port):
                self.starts += 1
                return self
            time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s} s\n{self.log_tail()}")

    def stop(self, kill: bool = False, timeout_s: float = 10.0) -> None:
        """SIGTERM (the broker saves its persistence file) or SIGKILL (it does not)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def require_mosquitto() -> str:
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        msg = "mosquitto binary not found (apt-get install mosquitto)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return binary


@pytest.fixture
def mqtt_broker(tmp_path):
    """A started test-owned broker; stopped (and its log checked for dropped messages) after."""
    broker = MosquittoBroker(tmp_path / "mosquitto", binary=require_mosquitto())
    broker.start()
    yield broker
    broker.stop()
    # the trap of the default queue limits: fail loudly if the broker dropped anything
    assert "Outgoing messages are being dropped" not in broker.log_text(), broker.log_tail()
