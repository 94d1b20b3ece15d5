"""Two generator "hosts" on one machine: xdist workers in their own network namespaces.

The test builds a private bridge with two namespaces on it (addresses in a 10.213.N.0/24 it picks
unused), runs an execnet socket server in each, and points ``--tx socket=ADDR:PORT`` at them, with the
controller's phase barrier on the bridge address (``--certload-controller-host``) and the calibration
server on the same address. Everything is removed afterwards. Needs root and iproute2; skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import calibration  # tests/plugin/calibration.py
import pytest

import pytest_certload
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ManagedProcess

pytest_plugins = ["pytester"]

# the code under test: inner pytest sessions (subprocesses, socket workers) import it, not whatever
# copy of the package happens to be installed
REPO = Path(pytest_certload.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _inner_sessions_use_this_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


CALIBRATION = Path(__file__).resolve().parent / "calibration.py"

CONFTEST = """
import json, os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def server():
    return (HERE / "calibration-url.txt").read_text()


@pytest.fixture
def log(request):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "single")
    with open(HERE / f"seen-{worker}.jsonl", "a") as out:
        def write(**fields):
            netns = os.readlink("/proc/self/ns/net")
            out.write(json.dumps({"worker": worker, "netns": netns, **fields}) + "\\n")
        yield write
"""

SUITE = """
import pytest

@pytest.mark.certload(executor="constant-arrival-rate", rate=40, duration="1s", pre_allocated_vus=2,
                      thresholds={"http_reqs": ["count==40"], "http_req_failed": ["rate==0"]})
def test_from_two_hosts(certload, server, log):
    async def iteration(ctx):
        log(k=ctx.iteration)
        await ctx.request("GET", server + "/fast")
    certload.run(iteration).assert_thresholds()
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def _free_subnet() -> str:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=10).stdout
    for n in range(10, 250):
        prefix = f"10.213.{n}."
        if prefix not in routes:
            return prefix
    pytest.skip("no free 10.213.N.0/24 for the test's private bridge")


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, list[str], list[str]]]:
    """(host address on the bridge, namespace names, namespace addresses); removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns)")
    tag = f"{os.getpid() % 100000}"
    bridge, names = f"clbr{tag}", [f"clns{tag}a", f"clns{tag}b"]
    prefix = _free_subnet()
    host = prefix + "1"
    addresses = [prefix + "2", prefix + "3"]
    made: list[tuple[str, str]] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(("link", bridge))
        _ip("addr", "add", f"{host}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, (name, address) in enumerate(zip(names, addresses, strict=True)):
            _ip("netns", "add", name)
            made.append(("netns", name))
            outer, inner = f"clv{tag}{i}", f"clp{tag}{i}"
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            made.append(("link", outer))
            _ip("link", "set", inner, "netns", name)
            _ip("link", "set", outer, "master", bridge)
            _ip("link", "set", outer, "up")
            _ip("netns", "exec", name, "ip", "addr", "add", f"{address}/24", "dev", inner)
            _ip("netns", "exec", name, "ip", "link", "set", inner, "up")
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except (subprocess.CalledProcessError, OSError) as exc:
        _remove(made)
        pytest.skip(f"cannot build network namespaces here: {getattr(exc, 'stderr', '') or exc}")
    try:
        yield host, names, addresses
    finally:
        _remove(made)


def _remove(made: list[tuple[str, str]]) -> None:
    for kind, name in reversed(made):
        args = ("netns", "delete", name) if kind == "netns" else ("link", "delete", name)
        subprocess.run(["ip", *args], capture_output=True, timeout=10)


def _wait_listening(proc: ManagedProcess, host: str, port: int) -> None:
    def listening() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    proc.wait_ready(listening, timeout=15, what="listening")


def test_generators_in_two_network_namespaces_split_one_scenario(pytester, two_namespaces, tmp_path):
    host, names, addresses = two_namespaces
    pytester.makeconftest(CONFTEST)
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_hosts=SUITE)
    procs: list[ManagedProcess] = []
    try:
        port = free_port()
        target = ManagedProcess(
            "calibration",
            [sys.executable, str(CALIBRATION), "--host", host, "--port", str(port)],
            tmp_path / "calibration.log",
        ).start()
        procs.append(target)
        _wait_listening(target, host, port)
        (pytester.path / "calibration-url.txt").write_text(f"http://{host}:{port}")
        specs = []
        for i, (name, address) in enumerate(zip(names, addresses, strict=True)):
            gw_port = free_port()
            argv = ["ip", "netns", "exec", name, sys.executable, "-m", "execnet.script.socketserver"]
            proc = ManagedProcess(
                f"execnet-{name}",
                [*argv, f"{address}:{gw_port}"],
                tmp_path / f"{name}.log",
                cwd=pytester.path,
            ).start()
            procs.append(proc)
            _wait_listening(proc, address, gw_port)
            specs += ["--tx", f"socket={address}:{gw_port}//id=gw{i}//chdir={pytester.path}"]
        result = pytester.runpytest_subprocess(
            *specs, "--dist", "load", "--certload-controller-host", host, "--certload-summary=s.json"
        )
    finally:
        for proc in procs:
            proc.stop()
    result.assert_outcomes(passed=1)
    events = [json.loads(line) for f in pytester.path.glob("seen-*.jsonl") for line in f.open()]
    by_worker = {w: sorted(e["k"] for e in events if e["worker"] == w) for w in ("gw0", "gw1")}
    assert by_worker == {"gw0": list(range(0, 40, 2)), "gw1": list(range(1, 40, 2))}
    namespaces = {e["worker"]: e["netns"] for e in events}
    assert len(set(namespaces.values())) == 2  # two generator "hosts"
    assert os.readlink("/proc/self/ns/net") not in namespaces.values()
    doc = json.loads((pytester.path / "s.json").read_text())
    assert doc["scenarios"]["test_from_two_hosts"]["requests"] == 40
