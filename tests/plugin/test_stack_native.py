"""The native stack for real: our processes, our certificate, a database that takes the DSN,
certctl (or the stand-in) that enforces the token, and the external provider attached to it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from pytest_certload.stack.model import STANDIN_CAVEAT, TARGET_NAMES, Stack
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.plugin import require_target
from pytest_certload.stack.probes import https_get
from pytest_certload.stack.session import StackSession
from pytest_certload.stack.tls import presented_fingerprint

CERTCTL_BIN = os.environ.get("CERTLOAD_CERTCTL_BIN")
CERTCTL_MIGRATIONS = os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")


def native_options(server: str) -> StackOptions:
    if server == "certctl":
        if not (CERTCTL_BIN and CERTCTL_MIGRATIONS):
            pytest.skip("real certctl needs env CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS")
        return StackOptions(
            provider="native", certctl_bin=Path(CERTCTL_BIN), certctl_migrations=Path(CERTCTL_MIGRATIONS)
        )
    return StackOptions(provider="native", certctl="standin")


@pytest.fixture(scope="module", params=["certctl", "stand-in"])
def session(request: pytest.FixtureRequest) -> Iterator[StackSession]:
    s = StackSession(native_options(request.param))
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def stack(session: StackSession) -> Stack:
    assert session.stack is not None
    return session.stack


def test_server_label_says_what_answers(stack: Stack, session: StackSession) -> None:
    expected = "certctl" if session.opts.certctl_bin else "stand-in"
    assert stack.server == expected
    assert stack.kind == "native" and stack.owned
    if expected == "stand-in":
        assert stack.target_label == "certctl stand-in"
        assert stack.caveat == stack.describe()["caveat"] == STANDIN_CAVEAT
    else:
        assert stack.server_version and stack.target_label == f"certctl {stack.server_version}"
        assert stack.caveat is None and stack.describe()["caveat"] is None
    assert stack.fallback_reason is None  # an explicit choice: nothing to fall back from


def test_postgres_is_durable_by_default(stack: Stack) -> None:
    assert stack.pg_profile == "durable"
    with psycopg.connect(stack.dsn.reveal(), connect_timeout=5) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            assert conn.execute(f"SHOW {name}").fetchone()[0] == "on" == stack.pg_settings[name]
    assert stack.describe()["postgres_profile"] == "durable"


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_target_serves_tls_with_our_leaf(stack: Stack, name: str) -> None:
    require_target(stack, name)
    target = stack.targets[name]
    host, port = target.url.removeprefix("https://").rsplit(":", 1)
    assert presented_fingerprint(host, int(port)) == target.fingerprint_sha256
    status, body = https_get(target.url, target.health_path, str(stack.ca_bundle))
    assert (status, body.strip()) == (200, b"ok")


def test_postgres_accepts_the_dsn(stack: Stack) -> None:
    assert stack.dsn is not None
    with psycopg.connect(stack.dsn.reveal(), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "certctl"
        assert conn.info.server_version >= 150000
        if stack.server == "certctl":  # certctl migrated the database at boot
            applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
            assert applied >= 40


def test_certctl_ready_and_token_enforced(stack: Stack) -> None:
    ca = str(stack.ca_bundle)
    status, body = https_get(stack.certctl_url, "/ready", ca)
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert https_get(stack.certctl_url, "/api/v1/certificates", ca)[0] == 401
    assert https_get(stack.certctl_url, "/api/v1/certificates", ca, token="not-the-token")[0] == 401
    status, body = https_get(stack.certctl_url, "/api/v1/certificates?per_page=1", ca, token=stack.token)
    assert status == 200 and "data" in json.loads(body)


def test_secrets_stay_out_of_descriptions_and_argv(stack: Stack) -> None:
    text = json.dumps(stack.describe()) + repr(stack)
    secrets = [s.reveal() for s in (stack.token, stack.bootstrap_token, stack.dsn)]
    assert all(s and s not in text for s in secrets)
    password = stack.dsn.reveal().split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    argv = " ".join(" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))
    assert stack.token.reveal() not in argv and password not in argv


def test_f5_mock_speaks_icontrol(stack: Stack) -> None:
    import ssl

    import httpx

    require_target(stack, "f5")
    base = stack.targets["f5"].url
    with httpx.Client(
        base_url=base, verify=ssl.create_default_context(cafile=str(stack.ca_bundle)), timeout=5
    ) as client:
        assert client.post("/mgmt/tm/sys/crypto/cert", json={"name": "x"}).status_code == 401
        assert (
            client.post("/mgmt/shared/authn/login", json={"username": "", "password": ""}).status_code == 401
        )
        login = client.post("/mgmt/shared/authn/login", json={"username": "admin", "password": "pw"})
        token = login.json()["token"]["token"]
        auth = {"X-F5-Auth-Token": token}
        assert client.post("/mgmt/tm/sys/crypto/cert", json={}, headers=auth).status_code == 400
        assert (
            client.post("/mgmt/tm/sys/crypto/cert", json={"name": "c1"}, headers=auth).json()["name"] == "c1"
        )
        txn = client.post("/mgmt/tm/transaction", json={}, headers=auth).json()
        assert txn["state"] == "STARTED"
        done = client.patch(
            f"/mgmt/tm/transaction/{txn['transId']}", json={"state": "VALIDATING"}, headers=auth
        )
        assert done.json()["state"] == "COMPLETED"
        assert client.get("/mgmt/tm/transaction/txn-999", headers=auth).status_code == 404
        prof = "/mgmt/tm/ltm/profile/client-ssl/cssl"
        client.patch(prof, json={"cert": "c1"}, headers={"Authorization": f"Bearer {token}"})
        assert client.get(prof, headers=auth).json()["cert"] == "c1"
        assert client.delete("/mgmt/tm/sys/crypto/cert/c1", headers=auth).status_code == 200
        assert client.delete("/mgmt/tm/sys/crypto/cert/c1", headers=auth).status_code == 404


def test_external_provider_attaches_without_owning(stack: Stack) -> None:
    opts = StackOptions(
        provider="external",
        certctl_url=stack.certctl_url,
        certctl_token=stack.token,
        certctl_ca=stack.ca_bundle,
        targets={"nginx": stack.targets["nginx"].url},
    )
    attached = StackSession(opts)
    ext = attached.start()
    try:
        assert ext.kind == "external" and not ext.owned
        assert ext.targets["nginx"].fingerprint_sha256 is None
        assert "haproxy" in ext.skipped
        assert (
            https_get(ext.certctl_url, "/api/v1/certificates", str(ext.ca_bundle), token=ext.token)[0] == 200
        )
        if stack.server == "certctl":
            assert ext.server == "certctl" and ext.server_version == stack.server_version
    finally:
        attached.stop()
    assert https_get(stack.certctl_url, "/health", str(stack.ca_bundle))[0] == 200  # stop() left it alone
