"""What goes wrong is reported, not hidden: a missing daemon skips its target with the reason,
a component that cannot start fails naming itself with its log tail, and nothing keeps running."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from docker_images import BASE_IMAGE, client_with_base_image  # this directory is on sys.path

from pytest_certload.sidecars import configs
from pytest_certload.sidecars.configs import find_binary
from pytest_certload.stack import process
from pytest_certload.stack.docker import SESSION_LABEL
from pytest_certload.stack.model import Secret, Stack
from pytest_certload.stack.native import python_env
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.plugin import require_owned_or_allowed, require_target
from pytest_certload.stack.ports import distinct_free_ports
from pytest_certload.stack.probes import is_ours, presents_leaf
from pytest_certload.stack.process import ComponentFailed, ManagedProcess
from pytest_certload.stack.session import StackSession
from pytest_certload.stack.tls import make_tls_material


def children_alive() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]


def failing_certctl(tmp_path: Path) -> tuple[Path, Path]:
    """A 'certctl' that prints a diagnostic and exits 3, plus a migrations dir that passes the checks."""
    binary = tmp_path / "certctl-server"
    binary.write_text('#!/bin/sh\necho "boom: refusing to start (test double)" >&2\nexit 3\n')
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "000001_init.up.sql").write_text("SELECT 1;\n")
    return binary, migrations


def test_missing_daemon_skips_its_target_with_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("nginx", "apache"):
        found = find_binary(name)
        if found is None:
            pytest.skip(f"{name} not installed")
        (bindir / Path(found).name).symlink_to(found)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")  # no haproxy anywhere on it
    assert find_binary("haproxy") is None
    session = StackSession(StackOptions(provider="native"))
    try:
        stack = session.start()
        assert "haproxy" not in stack.targets
        assert "haproxy not found on PATH" in stack.skipped["haproxy"]
        assert {"nginx", "apache", "f5"} <= set(stack.targets)
        with pytest.raises(pytest.skip.Exception, match="target haproxy unavailable: haproxy not found"):
            require_target(stack, "haproxy")
        require_target(stack, "nginx")  # present: no skip
    finally:
        session.stop()


def test_component_that_cannot_start_fails_with_name_and_log_tail(tmp_path: Path) -> None:
    binary, migrations = failing_certctl(tmp_path)
    # processes of a session stack started by earlier tests in this run are not this test's business
    before_registered = set(process.RUNNING)
    before_children = {p.pid for p in children_alive()}
    session = StackSession(StackOptions(provider="native", certctl_bin=binary, certctl_migrations=migrations))
    with pytest.raises(ComponentFailed) as failed:
        session.start()
    err = failed.value
    assert err.name == "certctl" and err.command == f"{binary} --migrate-only"  # fails while migrating
    assert "exited with code 3" in str(err) and "boom: refusing to start" in err.log_tail
    # PostgreSQL and the targets this session started were stopped too
    assert set(process.RUNNING) <= before_registered
    assert {p.pid for p in children_alive()} <= before_children
    assert session.workdir is not None and not session.workdir.exists()


def test_real_certctl_refusing_a_broken_migration_is_reported(tmp_path: Path) -> None:
    bin_, migrations = os.environ.get("CERTLOAD_CERTCTL_BIN"), os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")
    if not (bin_ and migrations):
        pytest.skip("needs env CERTLOAD_CERTCTL_BIN and CERTLOAD_CERTCTL_MIGRATIONS")
    before_children = {p.pid for p in children_alive()}
    broken = tmp_path / "migrations"
    broken.mkdir()
    (broken / "000001_broken.up.sql").write_text("CREATE TABLE certload_broken (;\n")
    session = StackSession(StackOptions(provider="native", certctl_bin=Path(bin_), certctl_migrations=broken))
    with pytest.raises(ComponentFailed) as failed:
        session.start()
    assert failed.value.name == "certctl" and "exited with code" in str(failed.value)
    assert "000001_broken.up.sql" in failed.value.log_tail
    assert {p.pid for p in children_alive()} <= before_children


def test_docker_component_failure_names_it_and_removes_containers(tmp_path: Path) -> None:
    client = client_with_base_image()
    binary, migrations = failing_certctl(tmp_path)
    opts = StackOptions(
        provider="docker", certctl_bin=binary, certctl_migrations=migrations, base_image=BASE_IMAGE
    )
    session = StackSession(opts)
    with pytest.raises(ComponentFailed) as failed:
        session.start()
    assert failed.value.name == "certctl" and BASE_IMAGE in failed.value.command
    assert "container exited with code 3" in str(failed.value)
    assert "boom: refusing to start" in failed.value.log_tail
    left = client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session.session_id}"})
    assert left == []


def test_external_stack_is_refused_for_load_unless_allowed(pytestconfig: pytest.Config) -> None:
    external = Stack(
        kind="external",
        certctl_url="https://127.0.0.1:1",
        token=Secret("t"),
        ca_bundle=None,
        server="unknown",
        owned=False,
    )
    owned = Stack(
        kind="native",
        certctl_url="https://127.0.0.1:1",
        token=Secret("t"),
        ca_bundle=None,
        server="stand-in",
        owned=True,
    )
    require_owned_or_allowed(owned, pytestconfig)
    if pytestconfig.getoption("--certload-allow-external-load"):
        require_owned_or_allowed(external, pytestconfig)
    else:
        with pytest.raises(pytest.fail.Exception, match="--certload-allow-external-load"):
            require_owned_or_allowed(external, pytestconfig)


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    bad_target = run("--certload-target", "nginx=http://x")
    assert bad_target.returncode == 4  # pytest's usage-error exit code
    assert "--certload-target 'nginx=http://x': expected NAME=https://HOST:PORT" in bad_target.stderr
    bad_bin = run("--certctl-bin", "/nonexistent/certctl")
    assert bad_bin.returncode == 4 and "--certctl-bin /nonexistent/certctl: no such file" in bad_bin.stderr
    both = run("--certctl-image=a:1", "--certctl=standin")
    assert both.returncode == 4
    assert "--certctl=standin and --certctl-image=a:1 name two different certctls" in both.stderr


def test_readiness_rejects_a_listener_that_is_not_our_process(tmp_path: Path) -> None:
    """All our services present one leaf: only 'our process holds the listening socket' tells them apart."""
    tls = make_tls_material(tmp_path / "tls")
    port = distinct_free_ports(1)[0]
    cmd = configs.f5mock(tmp_path / "f5", "127.0.0.1", port, tls, python=sys.executable)
    stranger = ManagedProcess("stranger", cmd.argv, tmp_path / "f5.log", env=python_env()).start()
    bystander = ManagedProcess(
        "ours", [sys.executable, "-c", "import sys; sys.stdin.read()"], tmp_path / "b.log"
    )
    try:
        bystander.start()
        stranger.wait_ready(lambda: presents_leaf("127.0.0.1", port, tls.fingerprint_sha256), 30)
        assert is_ours(stranger.popen.pid, "127.0.0.1", port, tls.fingerprint_sha256)
        assert not is_ours(bystander.popen.pid, "127.0.0.1", port, tls.fingerprint_sha256)
        assert not is_ours(stranger.popen.pid, "127.0.0.1", port, "0" * 64)  # right process, wrong leaf
    finally:
        stranger.stop()
        bystander.stop()
