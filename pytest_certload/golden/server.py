"""A server to record a profile from: a fresh PostgreSQL plus the real certctl or the stand-in.

Built from the stack's own pieces (the same PostgreSQL class with pg_stat_statements preloaded,
the same certctl boot recipe and stand-in command line as the native stack and the contract
suite), without the nginx/apache/haproxy/F5 targets a profile does not need. certctl's scheduler
loops are pushed out of the recording window so their statements do not land in a request's.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_certload.stack.certctl import (
    ServerBoot,
    SessionSecrets,
    certctl_process,
    ensure_prof_test,
    standin_process,
)
from pytest_certload.stack.native import python_env
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.postgres import NativePostgres
from pytest_certload.stack.probes import certctl_ready, certctl_version
from pytest_certload.stack.tls import make_tls_material

HOST = "127.0.0.1"
BOOT_TIMEOUT_S = 90.0
#: certctl's background loops, moved past the recording (facts B.10); the renewal scan is already 24h
QUIET_SCHEDULER = {
    "CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL": "1h",
    "CERTCTL_SCHEDULER_RETRY_INTERVAL": "1h",
    "CERTCTL_JOB_TIMEOUT_INTERVAL": "1h",
    "CERTCTL_SCHEDULER_AGENT_HEALTH_CHECK_INTERVAL": "1h",
    "CERTCTL_SCHEDULER_NOTIFICATION_PROCESS_INTERVAL": "1h",
    "CERTCTL_NOTIFICATION_RETRY_INTERVAL": "1h",
    "CERTCTL_SHORT_LIVED_EXPIRY_CHECK_INTERVAL": "1h",
}


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    token: str = ""
    ssl_context: ssl.SSLContext | None = None
    dsn: str = ""
    label: str = ""  # "certctl <version>" or "certctl stand-in"
    postgres_version: str | None = None


@contextmanager
def running_server(
    workdir: Path, certctl_bin: Path | None = None, migrations: Path | None = None
) -> Iterator[RunningServer]:
    """certctl (``certctl_bin`` given) or the stand-in on a fresh database; everything stopped after."""
    with ExitStack() as stack:
        pg = NativePostgres(workdir / "pg")
        stack.callback(pg.stop)
        pg.start()
        tls = make_tls_material(workdir / "tls")
        secret = SessionSecrets()
        port = free_port()
        logs = workdir / "logs"
        boot = ServerBoot(pg.dsn, HOST, port, tls.server_cert, tls.server_key, secret, rate_limit=False)
        if certctl_bin is not None:
            cwd = workdir / "certctl-cwd"  # empty: no web/ directory, API-only like the stacks
            cwd.mkdir(parents=True, exist_ok=True)
            proc = certctl_process(
                boot, certctl_bin, migrations, name="certctl", log=logs / "certctl.log", cwd=cwd, home=cwd,
                extra_env=QUIET_SCHEDULER,
            )  # fmt: skip
        else:
            proc = standin_process(
                boot, name="certctl stand-in", log=logs / "standin.log", base_env=python_env(), cwd=workdir
            )
        proc.start()
        stack.callback(proc.stop)
        url = f"https://{HOST}:{port}"
        ctx = tls.client_context()
        ca = str(tls.ca_cert)
        proc.wait_ready(lambda: certctl_ready(url, ca), BOOT_TIMEOUT_S, "answering /health and /ready")
        ensure_prof_test(pg.dsn)
        label = "certctl stand-in"
        if certctl_bin is not None:
            label = f"certctl {certctl_version(url, ca) or '?'}"
        yield RunningServer(url, secret.api_token.reveal(), ctx, pg.dsn.reveal(), label, pg.version)
