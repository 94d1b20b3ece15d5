"""Nothing outlives the run: a pytest session holding the stack is interrupted (SIGINT, SIGTERM)
and every process and container it started must be gone; under xdist the workers share one stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_certload.stack.docker import SESSION_LABEL, engine_answers

BASE_IMAGE = os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE", "certload/base:bookworm")

HOLDING_TEST = """
import json, os, time
from pathlib import Path
import psutil

def test_hold(certload_stack):
    out = Path(os.environ["CERTLOAD_TEST_OUT"]) / (os.environ.get("PYTEST_XDIST_WORKER", "main") + ".json")
    kids = [{"pid": p.pid, "create_time": p.create_time()} for p in psutil.Process().children(recursive=True)]
    workdir = str(certload_stack.ca_bundle.parent.parent)
    info = {"kids": kids, "url": certload_stack.certctl_url, "workdir": workdir}
    out.with_suffix(".tmp").write_text(json.dumps(info))
    out.with_suffix(".tmp").rename(out)
    if os.environ.get("CERTLOAD_TEST_HOLD"):
        deadline = time.monotonic() + 120  # bounded: the parent interrupts long before
        while time.monotonic() < deadline:
            time.sleep(0.05)

def test_hold_too(certload_stack):
    test_hold(certload_stack)
"""


def still_running(kids: list[dict]) -> list[int]:
    alive = []
    for k in kids:
        try:
            p = psutil.Process(k["pid"])
            if abs(p.create_time() - k["create_time"]) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(k["pid"])
        except psutil.NoSuchProcess:
            continue
    return alive


def labelled_containers() -> set[str]:
    import docker

    client = docker.from_env()
    try:
        return {c.id for c in client.containers.list(all=True, filters={"label": SESSION_LABEL})}
    finally:
        client.close()


def run_child(tmp_path: Path, args: list[str], hold: bool, k: str) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "test_child.py").write_text(HOLDING_TEST)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, CERTLOAD_TEST_OUT=str(out))
    if hold:
        env["CERTLOAD_TEST_HOLD"] = "1"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", k, str(tmp_path), *args]
    log = open(tmp_path / "child.log", "wb")  # noqa: SIM115 - closed by the caller via proc
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT), out


def wait_for(path_glob: tuple[Path, str], proc: subprocess.Popen, count: int, timeout: float) -> list[dict]:
    directory, pattern = path_glob
    deadline = time.monotonic() + timeout
    while True:
        found = sorted(directory.glob(pattern))
        if len(found) >= count:
            return [json.loads(p.read_text()) for p in found]
        if proc.poll() is not None:
            pytest.fail(f"child pytest exited early ({proc.returncode})")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"child never reported a running stack within {timeout} s")
        time.sleep(0.05)  # polling the child's report file


def provider_args(kind: str) -> list[str]:
    """The stand-in stack, said explicitly: the counts below are its processes and containers
    (a certctl binary in the environment would add a migration container)."""
    if kind == "native":
        return ["--certload-stack=native", "--certctl=standin"]
    if not engine_answers():
        pytest.skip("no Docker engine answers (start one: bash docker-up.sh up)")
    return [
        "--certload-stack=docker",
        "--certctl=standin",
        "--certload-docker-network=host",
        f"--certload-base-image={BASE_IMAGE}",
    ]


@pytest.mark.parametrize("kind", ["native", "docker"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_session_leaves_nothing_running(tmp_path: Path, kind: str, signum: int) -> None:
    args = provider_args(kind)
    before = labelled_containers() if kind == "docker" else set()
    proc, out = run_child(tmp_path, args, hold=True, k="test_hold and not too")
    try:
        [info] = wait_for((out, "*.json"), proc, 1, 90)
        if kind == "native":
            assert len(info["kids"]) >= 6  # postgres, certctl stand-in, 4 targets (and their workers)
            assert len(still_running(info["kids"])) >= 6  # running until the signal
        else:
            assert len(labelled_containers() - before) == 6
        proc.send_signal(signum)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "child.log").read_text()
    assert proc.returncode == 2, log  # pytest's "interrupted"
    assert "KeyboardInterrupt" in log
    assert still_running(info["kids"]) == [], log
    assert not Path(info["workdir"]).exists()
    if kind == "docker":
        assert labelled_containers() - before == set()


@pytest.mark.parametrize("kind", ["native", "docker"])
def test_xdist_workers_share_one_stack_and_it_is_stopped_once(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("xdist")
    args = provider_args(kind)
    before = labelled_containers() if kind == "docker" else set()
    proc, out = run_child(tmp_path, [*args, "-n", "2"], hold=False, k="test_hold")
    try:
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "child.log").read_text()
    assert proc.returncode == 0, log
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("gw*.json"))]
    assert len(reports) == 2, log
    assert reports[0]["url"] == reports[1]["url"]  # one stack, seen by both workers
    if kind == "native":
        kids = [k for r in reports for k in r["kids"]]
        assert len(kids) >= 6  # the starting worker's children
        assert still_running(kids) == [], log
    else:
        assert labelled_containers() - before == set()
    assert not Path(reports[0]["workdir"]).exists()


@pytest.mark.parametrize("kind", ["native", "docker"])
def test_leftovers_of_a_killed_session_are_reaped_by_the_next(tmp_path: Path, kind: str) -> None:
    """SIGKILL leaves no finalizer a chance; the next stack start removes the orphans."""
    from pytest_certload.stack.docker import reap_orphans
    from pytest_certload.stack.session import reap_native_orphans

    args = provider_args(kind)
    before = labelled_containers() if kind == "docker" else set()
    proc, out = run_child(tmp_path, args, hold=True, k="test_hold and not too")
    try:
        [info] = wait_for((out, "*.json"), proc, 1, 90)
        proc.kill()  # SIGKILL
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Path(info["workdir"]).exists()  # nothing could clean up
    if kind == "docker":
        assert len(labelled_containers() - before) == 6
        reap_orphans()
        assert labelled_containers() - before == set()
    else:
        assert len(still_running(info["kids"])) >= 6
        assert info["workdir"] in reap_native_orphans()
        assert still_running(info["kids"]) == []
    assert not Path(info["workdir"]).exists()
