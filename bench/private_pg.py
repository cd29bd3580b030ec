"""A PostgreSQL cluster of our own: ``initdb`` in a temporary directory, a free port,
start / crash / restart at will. The fault suite restarts it; the machine's shared
PostgreSQL on 5432 is never touched.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres``
system user (``runuser``); as any other user it is that user's.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f"{name} not found (PostgreSQL server binaries)")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.data = self.workdir / "pgdata"
        self.log = self.workdir / "postgres.log"
        self.port = port or free_port()
        self.owner = "postgres" if os.geteuid() == 0 else getpass.getuser()
        self.starts = 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args) if os.geteuid() != 0 else ["runuser", "-u", self.owner, "--", *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"{args[0]} exited with {r.returncode}: {r.stderr.strip()[-2000:]}")
        return r

    def init(self) -> "PrivatePostgres":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, self.owner)
            for d in (self.workdir, *self.workdir.parents):  # the owner must reach its directory
                if d != Path("/"):
                    d.chmod(d.stat().st_mode | 0o011)
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale", "C")
        return self

    def start(self, timeout_s: float = 30) -> "PrivatePostgres":
        # fsync off: a killed server keeps what it wrote in the OS cache (only a machine crash
        # would lose it), so crash restarts stay exact and the suite runs faster;
        # synchronous_commit stays on, so a commit is in the WAL before it is acknowledged
        opts = (f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                  "-t", str(int(timeout_s)), "start")
        self.starts += 1
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean) or ``immediate`` (a crash: recovery from the WAL at the next start)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "immediate") -> float:
        """Stop (a crash by default) and start again; returns the seconds it was down."""
        t0 = time.monotonic()
        self.stop(mode)
        self.start()
        return time.monotonic() - t0

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        self._run(_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
                  "-c", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
