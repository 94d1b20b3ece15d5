"""Generators on other hosts (``--tx socket=...``) use the controller's stack; they never start their own.

A worker behind an execnet socket server shares no file system with the controller, so the FileLock
hand-over the local workers use cannot reach it. Here one worker is a socket gateway on loopback and
the other a local popen worker: both must load the one stack the controller started.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ManagedProcess

SUITE = """
import json, os
from pathlib import Path

from pytest_certload.stack.plugin import SESSIONS_KEY


def test_where_is_the_stack(certload, certload_stack, request):
    # a load test (it uses `certload`): it runs on every worker
    worker = os.environ["PYTEST_XDIST_WORKER"]
    Path(f"seen-{worker}.json").write_text(json.dumps({
        "url": certload_stack.certctl_url,
        "server": certload_stack.server,
        "stacks_started_here": len(request.config.stash[SESSIONS_KEY]),
        "has_token": certload_stack.token is not None,
    }))
"""


def _wait_listening(proc: ManagedProcess, host: str, port: int) -> None:
    def listening() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    proc.wait_ready(listening, timeout=15, what="listening")


def test_socket_generators_use_the_controllers_stack(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(test_remote=SUITE)
    port = free_port()
    gateway = ManagedProcess(
        "execnet-socketserver",
        [sys.executable, "-m", "execnet.script.socketserver", f"127.0.0.1:{port}"],
        tmp_path / "socketserver.log",
        cwd=pytester.path,
    ).start()
    try:
        _wait_listening(gateway, "127.0.0.1", port)
        result = pytester.runpytest_subprocess(
            "--tx",
            f"socket=127.0.0.1:{port}//id=gw0//chdir={pytester.path}",
            "--tx",
            "popen//id=gw1",
            "--dist=load",
            "--certload-stack=native",
        )
    finally:
        gateway.stop()
    result.assert_outcomes(passed=1)
    seen = {w: json.loads((pytester.path / f"seen-{w}.json").read_text()) for w in ("gw0", "gw1")}
    assert seen["gw0"]["url"] == seen["gw1"]["url"]  # one stack for both generators
    assert seen["gw0"]["server"] == "stand-in" and seen["gw0"]["has_token"]
    # neither worker started a stack: the controller did, and stopped it
    assert seen["gw0"]["stacks_started_here"] == seen["gw1"]["stacks_started_here"] == 0
