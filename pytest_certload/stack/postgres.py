"""A throw-away PostgreSQL server as a local process (initdb + postgres from the system packages).

Tuned for tests, not durability: fsync off, data directory on tmpfs when available. The role
owns the database (certctl's migrations need that: pgcrypto, ALTER TABLE … DISABLE TRIGGER).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ComponentFailed, ManagedProcess

PG_BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "listen_addresses": "127.0.0.1",
}


def find_pg_bin() -> Path | None:
    """The directory holding initdb and postgres (≥ 15), or None."""
    for d in PG_BIN_DIRS:
        if (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def dsn_for(user: str, password: str, port: int, dbname: str, host: str = "127.0.0.1") -> str:
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=disable"


@dataclass
class NativePostgres:
    """initdb into a temporary directory, start ``postgres`` on a free loopback port, create the db."""

    workdir: Path
    dbname: str = "certctl"
    user: str = "certload"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = 0
    process: ManagedProcess | None = None
    ready_s: float = 0.0
    version: str | None = None

    @property
    def dsn(self) -> str:
        return dsn_for(self.user, self.password, self.port, self.dbname)

    def start(self, timeout: float = 30.0) -> NativePostgres:
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise ComponentFailed(
                "postgresql", "initdb", "no PostgreSQL ≥ 15 binaries found (apt-get install postgresql)"
            )
        run_as = "postgres" if os.geteuid() == 0 else None
        base = (
            Path("/dev/shm") if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else self.workdir
        )
        datadir = Path(tempfile.mkdtemp(prefix="certload-pg-", dir=base))
        sockdir = datadir / "sock"
        sockdir.mkdir()
        pwfile = datadir / "pw"
        pwfile.write_text(self.password)
        if run_as:
            entry = pwd.getpwnam(run_as)
            for p in (datadir, sockdir, pwfile):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        self.port = self.port or free_port()
        initdb = [
            str(pg_bin / "initdb"),
            "-D",
            str(datadir / "data"),
            "-U",
            self.user,
            "-A",
            "scram-sha-256",
            f"--pwfile={pwfile}",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
        ]
        res = subprocess.run(initdb, capture_output=True, text=True, user=run_as, timeout=120)
        pwfile.unlink()
        if res.returncode != 0:
            raise ComponentFailed(
                "postgresql", " ".join(initdb), "initdb failed", (res.stdout + res.stderr)[-2000:]
            )
        argv = [
            str(pg_bin / "postgres"),
            "-D",
            str(datadir / "data"),
            "-p",
            str(self.port),
            "-k",
            str(sockdir),
        ]
        for key, value in TEST_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        self._datadir = datadir
        self.process = ManagedProcess(
            "postgresql", argv, self.workdir / "logs" / "postgresql.log", user=run_as, stop_signal=2
        )  # SIGINT: fast shutdown
        self.process.start()
        admin = dsn_for(self.user, self.password, self.port, "postgres")

        def accepts() -> bool:
            with psycopg.connect(admin, connect_timeout=2) as conn:
                self.version = conn.execute("SHOW server_version").fetchone()[0]
            return True

        self.ready_s = self.process.wait_ready(accepts, timeout, "accepting connections")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}" OWNER "{self.user}"')
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        datadir = getattr(self, "_datadir", None)
        if datadir is not None:
            shutil.rmtree(datadir, ignore_errors=True)
