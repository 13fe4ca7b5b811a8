"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` + ``pg_ctl`` in a temp dir.

Uses the server binaries of Debian's ``postgresql`` package (``make postgres`` installs it), found
on PATH or under /usr/lib/postgresql/*/bin. Nothing is installed, no service is touched: the
cluster lives in its own directory, listens on 127.0.0.1 at a free port, and is deleted on stop.
PostgreSQL refuses to run as root, so under root the server runs as the unprivileged ``postgres``
user (made by the Debian package) or ``nobody``.

It is a test cluster: ``fsync=off`` (nothing in it needs to survive a power cut) and trust
authentication on loopback (a password in a URL is accepted and ignored).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from rlhf.feedback.loadtest import free_port


def server_bin(name: str) -> str | None:
    """Path of a PostgreSQL server program (initdb, pg_ctl), or None when none is installed."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return versions[-1] if versions else None


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise RuntimeError("running as root, and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


class TempPostgres:
    """A PostgreSQL cluster in a temp dir; ``url(dbname)`` makes a database and returns its URL."""

    def __init__(self) -> None:
        initdb, pg_ctl = server_bin("initdb"), server_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError("PostgreSQL server programs not found (`make postgres` installs them)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.user = _run_as()
        self.port = free_port()
        # mkdtemp under /tmp, not pytest's tmp_path: its parents are mode 0700 to root
        self.dir = Path(tempfile.mkdtemp(prefix="rlhf-pg-"))
        self.data = self.dir / "data"
        self._made = 0

    def _cmd(self, *argv: str) -> None:
        result = subprocess.run(argv, user=self.user, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> TempPostgres:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.user:
            shutil.chown(self.dir, self.user)
        self._cmd(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = str(self.dir / "server.log")
        self._cmd(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start")

    def url(self, dbname: str | None = None, password: str | None = None) -> str:
        """A new empty database's SQLAlchemy URL (psycopg 3)."""
        import psycopg

        self._made += 1
        dbname = dbname or f"t{self._made}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{dbname}"')
        secret = f":{password}" if password else ""
        return f"postgresql+psycopg://postgres{secret}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                user=self.user,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
