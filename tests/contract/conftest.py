"""Targets for the contract suite: the certctl stand-in always, the real certctl when available.

Every test runs once per flavour (``stand-in``, ``certctl``), so one run compares the two; the
``certctl`` flavour is skipped unless ``--certctl-bin`` / ``CERTLOAD_CERTCTL_BIN`` names a
certctl-server binary (and ``--certctl-migrations`` / ``CERTLOAD_CERTCTL_MIGRATIONS`` its migrations).

``contract_target`` is the one place that knows how a target comes to be; the tests only see a
:class:`ContractTarget`. To run the suite against the session's ``certload_stack`` instead (one
flavour per run), make ``contract_target`` return ``target_from_stack(certload_stack)``.

The real certctl is started without ``CERTCTL_DEMO_SEED``: the demo seed's network-scan targets
make certctl TLS-probe 10.0.x.0/24 and 192.168.100.0/24 at boot (non-loopback traffic). The FK
rows the scenarios name come from :func:`pytest_certload.standin.schema.ensure_demo_rows`.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import httpx
import psycopg
import pytest

from pytest_certload.stack.certctl import (
    ServerBoot,
    SessionSecrets,
    certctl_process,
    ensure_prof_test,
    standin_process,
)
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.postgres import NativePostgres, find_pg_bin
from pytest_certload.stack.tls import TLSMaterial, make_tls_material

FLAVOURS = ("stand-in", "certctl")
BOOT_TIMEOUT_S = 90.0


class ContractTarget(NamedTuple):
    """What a contract test needs: unpacks as (base_url, token, ssl_context, dsn, flavour)."""

    base_url: str
    token: str
    ssl_context: ssl.SSLContext
    dsn: str
    flavour: str

    def client(self, auth: bool = True, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        return httpx.Client(
            base_url=self.base_url, verify=self.ssl_context, headers=headers, timeout=30, **kwargs
        )

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True)


def certctl_paths(config: pytest.Config) -> tuple[Path, Path] | None:
    """(binary, migrations) from options or env, or None when the real certctl is not available."""
    binary = _option(config, "--certctl-bin") or os.environ.get("CERTLOAD_CERTCTL_BIN")
    migrations = _option(config, "--certctl-migrations") or os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")
    if not binary:
        return None
    bin_path = Path(binary)
    if not bin_path.is_file() or not os.access(bin_path, os.X_OK):
        raise pytest.UsageError(f"certctl binary {bin_path} is not an executable file (CERTLOAD_CERTCTL_BIN)")
    mig = Path(migrations) if migrations else bin_path.parent / "migrations"
    if not (mig / "000001_initial_schema.up.sql").is_file():
        raise pytest.UsageError(
            f"certctl migrations not found in {mig}: set CERTLOAD_CERTCTL_MIGRATIONS to certctl's migrations/"
        )
    return bin_path, mig.resolve()


def _option(config: pytest.Config, name: str) -> str | None:
    try:
        return config.getoption(name)
    except ValueError:
        return None


class Session:
    """One PostgreSQL and one TLS leaf for the whole contract session; servers per flavour."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.stack = ExitStack()
        self.pg = NativePostgres(workdir / "pg")
        self.stack.callback(self.pg.stop)
        try:
            self.pg.start()
            self.tls: TLSMaterial = make_tls_material(workdir / "tls")
        except BaseException:
            self.stack.close()
            raise
        self.secret = SessionSecrets()
        self.token = self.secret.api_token
        self.bootstrap = self.secret.bootstrap_token
        self.commands: list[str] = []  # every command line started, for the secret-hygiene test

    def database(self, name: str) -> str:
        """A fresh database owned by the session role; returns its DSN (plain: a throw-away server)."""
        with psycopg.connect(self.pg.dsn.with_dbname("postgres").reveal(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.pg.dsn.with_dbname(name).reveal()

    def start(
        self,
        flavour: str,
        dsn: str,
        certctl: tuple[Path, Path] | None,
        rate_limit: bool,
        extra_args: tuple[str, ...] = (),
    ) -> str:
        """Start a server of ``flavour`` on ``dsn``; return its base URL. Stopped at session end.

        ``extra_args`` go to the stand-in's command line (latency/error injection); certctl has none.
        """
        port = free_port()
        tag = f"{flavour}-{port}"
        log = self.workdir / "logs" / f"{tag}.log"
        boot = ServerBoot(
            dsn, "127.0.0.1", port, self.tls.server_cert, self.tls.server_key, self.secret, rate_limit
        )
        if flavour == "stand-in":
            proc = standin_process(
                boot, name=tag, log=log, base_env=dict(os.environ), cwd=None, extra_args=extra_args
            )
        else:
            assert certctl is not None
            binary, migrations = certctl
            cwd = Path(tempfile.mkdtemp(prefix="certctl-cwd-", dir=self.workdir))  # no web/ → API-only
            proc = certctl_process(boot, binary, migrations, name=tag, log=log, cwd=cwd, home=cwd)
        proc.start()
        self.commands.append(proc.command)
        self.stack.callback(proc.stop)
        base = f"https://127.0.0.1:{port}"
        ctx = self.tls.client_context()

        def healthy() -> bool:
            return httpx.get(base + "/health", verify=ctx, timeout=2).status_code == 200

        proc.wait_ready(healthy, BOOT_TIMEOUT_S, "answering /health")
        return base

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="session")
def contract_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    if find_pg_bin() is None:
        pytest.skip("contract suite needs PostgreSQL >= 15 binaries (apt-get install postgresql)")
    session = Session(tmp_path_factory.mktemp("contract"))
    try:
        yield session
    finally:
        session.close()


def _start_target(
    request: pytest.FixtureRequest,
    session: Session,
    flavour: str,
    rate_limit: bool,
    db_suffix: str = "",
    extra_args: tuple[str, ...] = (),
) -> ContractTarget:
    certctl = certctl_paths(request.config)
    if flavour == "certctl" and certctl is None:
        pytest.skip("real certctl not configured: set CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS")
    suffix = ("_rl" if rate_limit else "") + db_suffix
    dsn = session.database(flavour.replace("-", "_") + suffix)
    base = session.start(flavour, dsn, certctl, rate_limit, extra_args)
    ensure_prof_test(dsn)
    return ContractTarget(base, session.token.reveal(), session.tls.client_context(), dsn, flavour)


def target_from_stack(stack) -> ContractTarget:
    """The switch-over point to the stack plugin: a ``certload_stack`` as a ContractTarget.

    ``contract_target`` below starts both flavours itself so one run compares them; a project that
    prefers the session stack (one flavour per run) replaces its body with
    ``return target_from_stack(request.getfixturevalue("certload_stack"))``.
    """
    if stack.dsn is None:
        pytest.skip("the contract suite checks database side effects: the stack has no DSN")
    ctx = (
        ssl.create_default_context(cafile=str(stack.ca_bundle))
        if stack.ca_bundle
        else ssl.create_default_context()
    )
    flavour = "stand-in" if stack.server == "stand-in" else "certctl"
    ensure_prof_test(stack.dsn.reveal())
    return ContractTarget(stack.certctl_url, stack.token.reveal(), ctx, stack.dsn.reveal(), flavour)


@pytest.fixture(scope="session", params=FLAVOURS)
def contract_target(request: pytest.FixtureRequest, contract_session: Session) -> ContractTarget:
    """A running target with the rate limiter off (certctl's load-test configuration)."""
    return _start_target(request, contract_session, request.param, rate_limit=False)


@pytest.fixture(scope="session")
def rate_limited_target(
    request: pytest.FixtureRequest, contract_session: Session, contract_target
) -> ContractTarget:
    """A second server of the same flavour with certctl's default limiter (50/s, burst 100) on."""
    return _start_target(request, contract_session, contract_target.flavour, rate_limit=True)


@pytest.fixture(scope="session")
def certctl_install(pytestconfig: pytest.Config) -> tuple[Path, Path] | None:
    """(certctl-server binary, migrations dir), or None when the real certctl is not configured."""
    return certctl_paths(pytestconfig)


@pytest.fixture
def start_target(request: pytest.FixtureRequest, contract_session: Session):
    """Factory for extra servers (own database): start_target(flavour, db_suffix, extra_args=(...))."""

    def start(flavour: str, db_suffix: str, extra_args: tuple[str, ...] = (), rate_limit: bool = False):
        return _start_target(request, contract_session, flavour, rate_limit, "_" + db_suffix, extra_args)

    return start


@pytest.fixture
def api(contract_target: ContractTarget) -> Iterator[httpx.Client]:
    with contract_target.client() as client:
        yield client


@pytest.fixture
def anon(contract_target: ContractTarget) -> Iterator[httpx.Client]:
    with contract_target.client(auth=False) as client:
        yield client


@pytest.fixture
def db(contract_target: ContractTarget) -> Iterator[psycopg.Connection]:
    with contract_target.db() as conn:
        yield conn


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@pytest.fixture
def cert_body():
    """Factory for a valid POST /api/v1/certificates body (k6.js createCertificate shape)."""

    def make(**overrides) -> dict:
        name = unique("contract") + ".example.test"
        body = {
            "name": name,
            "common_name": name,
            "issuer_id": "iss-local",
            "owner_id": "o-alice",
            "team_id": "t-platform",
            "renewal_policy_id": "rp-standard",
            "environment": "production",
            "sans": [name],
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not ...}

    return make


@pytest.fixture
def team(db: psycopg.Connection) -> tuple[str, str]:
    """A team and owner of its own, so bulk-renew criteria match only this test's certificates."""
    team_id, owner_id = unique("t-contract"), unique("o-contract")
    db.execute("INSERT INTO teams (id, name) VALUES (%s, %s)", (team_id, team_id))
    db.execute(
        "INSERT INTO owners (id, name, email, team_id) VALUES (%s, %s, %s, %s)",
        (owner_id, owner_id, f"{owner_id}@example.test", team_id),
    )
    return team_id, owner_id


@pytest.fixture
def agent(db: psycopg.Connection):
    """Factory inserting an agent row the way the loadtest fleet seed does."""

    def make(status: str = "Online", retired: bool = False, **columns) -> str:
        agent_id = unique("ag-contract")
        row = {
            "id": agent_id, "name": agent_id, "hostname": f"{agent_id}.fleet.example.test", "status": status,
            "api_key_hash": "loadtest_no_auth", "os": "linux", "architecture": "amd64",
            "ip_address": "10.42.0.1", "version": "2.1.0",
        }  # fmt: skip
        row.update(columns)
        cols = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        db.execute(
            f"INSERT INTO agents ({cols}, last_heartbeat_at) VALUES ({marks}, now() - interval '1 hour')",
            list(row.values()),
        )
        if retired:
            db.execute(
                "UPDATE agents SET retired_at = now(), retired_reason = 'contract' WHERE id = %s", (agent_id,)
            )
        return agent_id

    return make


@pytest.fixture
def bound(api, db, agent, cert_body):
    """Factory: an Online agent (or the one given), its target, a certificate mapped to the target."""
    from tests.contract.agent_helpers import bind_certificate  # not at the top: it imports this module

    def make(agent_id: str | None = None, **cert_fields) -> tuple[str, str, dict]:
        agent_id = agent_id or agent()
        target_id, cert = bind_certificate(api, db, agent_id, cert_body, **cert_fields)
        return agent_id, target_id, cert

    return make


@pytest.fixture(scope="session")
def start_session_target(request: pytest.FixtureRequest, contract_session: Session):
    """Like ``start_target``, for fixtures wider than a test: each (flavour, db) server starts once."""
    started: dict[tuple, ContractTarget] = {}

    def start(flavour: str, db_suffix: str, extra_args: tuple[str, ...] = (), rate_limit: bool = False):
        key = (flavour, db_suffix, extra_args, rate_limit)
        if key not in started:
            started[key] = _start_target(
                request, contract_session, flavour, rate_limit, "_" + db_suffix, extra_args
            )
        return started[key]

    return start


_ISSUER_TRUST: dict[str, object] = {}


def acme_for(target: ContractTarget, workdir: Path):
    """(Acme client, Trust): the target's prof-test ACME server with iss-local signing as our CA."""
    from tests.contract.acme_helpers import Acme, register_issuer_ca

    http = target.client()
    if target.base_url not in _ISSUER_TRUST:
        _ISSUER_TRUST[target.base_url] = register_issuer_ca(http, workdir / secrets.token_hex(4))
    return Acme(http), _ISSUER_TRUST[target.base_url]


@pytest.fixture
def acme(contract_target: ContractTarget, contract_session: Session):
    """The contract target's ACME server (with our issuer CA) and the trust anchor: (Acme, Trust)."""
    client, trust = acme_for(contract_target, contract_session.workdir / "issuer-ca")
    try:
        yield client, trust
    finally:
        client.http.close()
