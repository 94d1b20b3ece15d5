"""A throw-away PostgreSQL server as a local process (initdb + postgres from the system packages),
and the two durability profiles both stacks run PostgreSQL with.

``durable`` (the stacks' default): PostgreSQL's own ``fsync``, ``synchronous_commit`` and
``full_page_writes`` (all on), data directory on disk. certctl writes an audit row per request
behind a serialising trigger, so a database that never waits for its disk flatters every write
endpoint. ``fast`` (opt-in, e.g. CI): the three off and the data directory on tmpfs. Either way the
settings PostgreSQL reports after start are what the stack description shows, not what was asked.
The role owns the database (certctl's migrations need that: pgcrypto, ALTER TABLE … DISABLE TRIGGER).
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
from typing import TYPE_CHECKING

from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ComponentFailed, ManagedProcess
from pytest_certload.stack.secret import DsnSecret, Secret, connect_pg

if TYPE_CHECKING:
    import psycopg

PG_BIN_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
PG_PROFILES = ("durable", "fast")
DEFAULT_PG_PROFILE = "durable"
#: settings of every profile (capacity, not durability)
COMMON_SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "listen_addresses": "127.0.0.1",
    # per-statement counts and times: the server-side block (serverside/postgres.py) reads them
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
}
#: the durability settings the ``fast`` profile turns off; ``durable`` leaves them at PostgreSQL's defaults
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")
PROFILE_TEXT = {
    "durable": "PostgreSQL's own fsync, synchronous_commit and full_page_writes, data on disk",
    "fast": "fsync, synchronous_commit and full_page_writes off, data on tmpfs: flatters every write",
}


def server_settings(profile: str) -> dict[str, str]:
    """The ``-c`` settings for a profile: ``fast`` turns the durability settings off."""
    if profile not in PG_PROFILES:
        raise ValueError(f"PostgreSQL profile {profile!r}: expected one of {', '.join(PG_PROFILES)}")
    fast = {name: "off" for name in DURABILITY_SETTINGS} if profile == "fast" else {}
    return {**fast, **COMMON_SETTINGS}


def effective_settings(conn: psycopg.Connection) -> dict[str, str]:
    """What the running server says its durability settings are (the description shows these)."""
    query = "SELECT name, setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name"
    rows = conn.execute(query, (list(DURABILITY_SETTINGS),)).fetchall()
    return {name: setting for name, setting in rows}


def enable_statement_stats(dsn: DsnSecret | Secret) -> bool:
    """``CREATE EXTENSION pg_stat_statements`` in the stack's database; False when the server lacks it.

    The library is preloaded by :data:`COMMON_SETTINGS`; the view exists only where the extension is
    created. A server without the contrib module still runs: the per-query figures then say n/a.
    """
    try:
        with connect_pg(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        return True
    except Exception:
        return False


def filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts; 'unknown' elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target, best, kind = str(Path(path).resolve()), -1, "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best, kind = len(point), parts[2]
    return kind


MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def data_parent(profile: str) -> Path:
    """Where a profile's data directory goes: tmpfs for ``fast``, a disk-backed temp dir for ``durable``.

    Always a world-traversable directory (PostgreSQL runs as ``postgres`` when we are root).
    """
    if profile == "fast":
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm
        return Path(tempfile.gettempdir())
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp")):
        usable = candidate.is_dir() and os.access(candidate, os.W_OK)
        if usable and filesystem_type(candidate) not in MEMORY_FILESYSTEMS:
            return candidate
    return Path(tempfile.gettempdir())  # no disk-backed temp dir: the description says tmpfs


def find_pg_bin() -> Path | None:
    """The directory holding initdb and postgres (≥ 15), or None."""
    for d in PG_BIN_DIRS:
        if (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def dsn_for(user: str, password: Secret, port: int, dbname: str, host: str = "127.0.0.1") -> DsnSecret:
    return DsnSecret(
        Secret.compose("postgresql://{}:{}@{}:{}/{}?sslmode=disable", user, password, host, port, dbname)
    )


def new_password() -> Secret:
    return Secret(secrets.token_urlsafe(18))


@dataclass
class NativePostgres:
    """initdb into a temporary directory, start ``postgres`` on a free loopback port, create the db."""

    workdir: Path
    dbname: str = "certctl"
    user: str = "certload"
    password: Secret = field(default_factory=new_password, repr=False)
    port: int = 0
    process: ManagedProcess | None = None
    ready_s: float = 0.0
    version: str | None = None
    #: the stacks pass --certload-pg-profile (default durable); the contract suite and the seeding
    #: test databases build on this class for functional checks and keep the fast profile
    profile: str = "fast"
    settings: dict[str, str] = field(default_factory=dict)  # durability settings as the server reports
    data_fs: str | None = None  # file system type of the data directory
    statement_stats: bool = False  # pg_stat_statements created in the database

    def describe_data(self) -> str:
        """'disk (ext4)' or 'tmpfs': where the data directory is."""
        fs = self.data_fs or "unknown"
        return fs if fs in MEMORY_FILESYSTEMS else f"disk ({fs})"

    @property
    def dsn(self) -> DsnSecret:
        return dsn_for(self.user, self.password, self.port, self.dbname)

    def start(self, timeout: float = 30.0) -> NativePostgres:
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise ComponentFailed(
                "postgresql", "initdb", "no PostgreSQL ≥ 15 binaries found (apt-get install postgresql)"
            )
        run_as = "postgres" if os.geteuid() == 0 else None
        settings = server_settings(self.profile)  # checks the profile before anything is created
        datadir = Path(tempfile.mkdtemp(prefix="certload-pg-", dir=data_parent(self.profile)))
        self._datadir = datadir  # stop() removes it whatever fails below
        self.data_fs = filesystem_type(datadir)
        sockdir = datadir / "sock"
        sockdir.mkdir()
        pwfile = datadir / "pw"
        pwfile.write_text(self.password.reveal())  # read by initdb, removed right after
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
        try:
            res = subprocess.run(initdb, capture_output=True, text=True, user=run_as, timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)
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
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self.process = ManagedProcess(
            "postgresql", argv, self.workdir / "logs" / "postgresql.log", user=run_as, stop_signal=2
        )  # SIGINT: fast shutdown
        self.process.start()
        admin = dsn_for(self.user, self.password, self.port, "postgres")

        def accepts() -> bool:
            with connect_pg(admin, connect_timeout=2) as conn:
                self.version = conn.execute("SHOW server_version").fetchone()[0]
                self.settings = effective_settings(conn)
            return True

        self.ready_s = self.process.wait_ready(accepts, timeout, "accepting connections")
        with connect_pg(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}" OWNER "{self.user}"')
        self.statement_stats = enable_statement_stats(self.dsn)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        datadir = getattr(self, "_datadir", None)
        if datadir is not None:
            shutil.rmtree(datadir, ignore_errors=True)
