"""The sidecar-bound targets' nginx: one process per target, so agents deploying at once never meet.

CI failed once (1 in 10 deployments ``Failed`` in the renewal drain) when three targets shared one
nginx: ``nginx -s reload`` loads every certificate in the config, so an agent reloading while another
agent was between writing its new certificate and its key failed with "key values mismatch". These
tests hold the isolation and the deploy path (write, reload, new leaf served) against a real nginx.
"""

from __future__ import annotations

import asyncio
import shlex
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pytest_certload.agents.deploy_job import Sidecar, leaf_fingerprint
from pytest_certload.agents.sidecar_nginx import NOT_INSTALLED, nginx_binary, start_nginx_sidecar
from pytest_certload.stack.tls import make_tls_material

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason=NOT_INSTALLED)


@pytest.fixture
def sidecar(tmp_path: Path):
    tls = make_tls_material(tmp_path / "tls")
    started = start_nginx_sidecar(tmp_path / "sidecar", ["tgt-a", "tgt-b"], tls)
    yield started, tls
    started.stop()


def _stray_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _reload(config: dict) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(config["reload_command"]), capture_output=True, text=True, timeout=30)


def test_a_half_deployed_target_does_not_fail_another_targets_reload(sidecar) -> None:
    started, _ = sidecar
    a, b = started.configs["tgt-a"], started.configs["tgt-b"]
    assert a["port"] != b["port"] and a["reload_command"] != b["reload_command"]
    Path(a["key_path"]).write_bytes(_stray_key())  # target a mid-deploy: certificate and key disagree
    assert _reload(b).returncode == 0, "target b's reload must not load target a's files"
    broken = _reload(a)
    assert broken.returncode != 0 and "key values mismatch" in broken.stderr  # a's own reload checks a


def test_a_deploy_writes_reloads_and_the_new_leaf_is_served(sidecar, tmp_path: Path) -> None:
    started, _ = sidecar
    fresh = make_tls_material(tmp_path / "fresh")  # another leaf and key, as a renewal brings
    target = Sidecar(started.configs["tgt-b"])
    leaf = fresh.server_cert.read_text()
    target.write(leaf, "", fresh.server_key.read_bytes())

    async def deploy() -> tuple[str, str, str]:
        problem = await target.reload()
        actual, error = await target.wait_served(leaf_fingerprint(leaf), timeout=10.0)
        return problem, actual, error

    problem, actual, error = asyncio.run(deploy())
    assert problem == "" and error == ""
    assert actual == leaf_fingerprint(leaf) == fresh.fingerprint_sha256
