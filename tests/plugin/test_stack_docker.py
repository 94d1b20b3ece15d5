"""The docker stack (host networking, the local base image): same identity checks as native,
plus labels on every container and none left after stop."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pytest_certload.stack.docker import COMPONENT_LABEL, SESSION_LABEL, engine_answers
from pytest_certload.stack.model import TARGET_NAMES, Stack
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.probes import https_get
from pytest_certload.stack.session import StackSession
from pytest_certload.stack.tls import presented_fingerprint

BASE_IMAGE = os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE", "certload/base:bookworm")
CERTCTL_BIN = os.environ.get("CERTLOAD_CERTCTL_BIN")
CERTCTL_MIGRATIONS = os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")

pytestmark = pytest.mark.skipif(
    not engine_answers(), reason="no Docker engine answers (start one: bash docker-up.sh up)"
)


@pytest.fixture(scope="module")
def docker_client():
    import docker

    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {BASE_IMAGE} missing (bash docker-up.sh image)")
    yield client
    client.close()


def docker_options(server: str) -> StackOptions:
    opts = StackOptions(provider="docker", docker_network="host", base_image=BASE_IMAGE, certctl="standin")
    if server == "certctl":
        opts.certctl = "bin"
        if not (CERTCTL_BIN and CERTCTL_MIGRATIONS):
            pytest.skip("real certctl needs env CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS")
        opts.certctl_bin, opts.certctl_migrations = Path(CERTCTL_BIN), Path(CERTCTL_MIGRATIONS)
    return opts


@pytest.fixture(scope="module", params=["certctl", "stand-in"])
def session(request: pytest.FixtureRequest, docker_client) -> Iterator[StackSession]:
    s = StackSession(docker_options(request.param))
    try:
        s.start()
        yield s
    finally:
        s.stop()
    left = docker_client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={s.session_id}"})
    assert left == [], f"containers left after stop: {[c.name for c in left]}"


@pytest.fixture(scope="module")
def stack(session: StackSession) -> Stack:
    assert session.stack is not None
    return session.stack


def test_every_component_is_a_labelled_container(stack: Stack, session: StackSession, docker_client) -> None:
    containers = docker_client.containers.list(filters={"label": f"{SESSION_LABEL}={session.session_id}"})
    components = {c.labels[COMPONENT_LABEL] for c in containers}
    certctl = "certctl" if stack.server == "certctl" else "certctl stand-in"
    assert components == {"postgresql", certctl, *TARGET_NAMES}
    for c in containers:
        assert c.labels["org.testcontainers"] == "true"
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        if not c.labels[COMPONENT_LABEL].startswith("certctl"):  # only certctl/stand-in get the token
            assert all(stack.token.reveal() not in e for e in c.attrs["Config"]["Env"] or [])
        assert stack.token.reveal() not in " ".join(c.attrs["Config"]["Cmd"] or [])


def test_certctl_container_gets_the_token_only_in_env(
    stack: Stack, session: StackSession, docker_client
) -> None:
    containers = docker_client.containers.list(filters={"label": f"{SESSION_LABEL}={session.session_id}"})
    server = next(c for c in containers if c.labels[COMPONENT_LABEL].startswith("certctl"))
    assert stack.token.reveal() not in " ".join(server.attrs["Config"]["Cmd"] or [])


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_target_container_serves_our_leaf(stack: Stack, name: str) -> None:
    target = stack.targets[name]
    host, port = target.url.removeprefix("https://").rsplit(":", 1)
    assert presented_fingerprint(host, int(port)) == target.fingerprint_sha256
    status, body = https_get(target.url, target.health_path, str(stack.ca_bundle))
    assert (status, body.strip()) == (200, b"ok")


def test_postgres_container_accepts_the_dsn(stack: Stack) -> None:
    with psycopg.connect(stack.dsn.reveal(), connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == ("certload", "certctl")
        assert conn.info.server_version >= 150000
        # durable by default: PostgreSQL's own settings, data on the engine's disk, not on tmpfs
        assert conn.execute("SHOW fsync").fetchone()[0] == "on"
    assert stack.pg_profile == "durable" and stack.pg_data.startswith("disk (")


def test_certctl_container_ready_and_token_enforced(stack: Stack) -> None:
    ca = str(stack.ca_bundle)
    status, body = https_get(stack.certctl_url, "/ready", ca)
    assert status == 200 and json.loads(body)["status"] == "ready"
    assert https_get(stack.certctl_url, "/api/v1/certificates", ca)[0] == 401
    assert https_get(stack.certctl_url, "/api/v1/certificates?per_page=1", ca, token=stack.token)[0] == 200
