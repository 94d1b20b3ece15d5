"""NetworkFault on its own: traffic crosses the test's link, the delay is there only while injected,
and closing removes the namespace, the link and the relay. Needs root and iproute2; skips otherwise."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from pytest_certload.faults import NetworkFault, NetworkUnavailable


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server (the stand-in for certctl's port)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def round_trip_s(host: str, port: int) -> float:
    with socket.create_connection((host, port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"x")
        assert s.recv(16) == b"x"
        return time.monotonic() - started


def test_delay_only_while_injected_and_nothing_left_after(echo_port, tmp_path):
    try:
        link = NetworkFault(echo_port, tmp_path, hold_s=1, delay_ms=100, loss=0.0)
    except NetworkUnavailable as exc:
        pytest.skip(str(exc))
    with link:
        netns, host_if, relay_pid = link.netns, link.host_if, link.relay.popen.pid
        assert link.ns_addr.startswith("10.214.") and link.url.startswith(f"https://{link.ns_addr}:")
        assert round_trip_s(link.ns_addr, link.port) < 0.1
        link.inject()
        during = round_trip_s(link.ns_addr, link.port)
        link.undo()
        after = round_trip_s(link.ns_addr, link.port)
    assert during >= 0.2  # 100 ms each way
    assert after < 0.1
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert host_if not in links
    assert not psutil.pid_exists(relay_pid) or psutil.Process(relay_pid).status() == psutil.STATUS_ZOMBIE
    assert [e.what for e in link.events] == ["inject", "injected", "undone"]


def test_loss_rules_live_only_in_the_namespace_and_only_while_injected(echo_port, tmp_path):
    try:
        link = NetworkFault(echo_port, tmp_path, hold_s=1, delay_ms=0, loss=0.5)
    except NetworkUnavailable as exc:
        pytest.skip(str(exc))
    if link.netem:
        link.close()
        pytest.skip("this kernel has netem: loss is a qdisc, not iptables rules")

    def rules() -> str:
        inside = ["ip", "netns", "exec", link.netns, "iptables", "-S"]
        return subprocess.run(inside, capture_output=True, text=True, timeout=10).stdout

    host_rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True, timeout=10).stdout
    with link:
        link.inject()
        during = rules()
        assert subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout == host_rules
        link.undo()
        after = rules()
    assert during.count("--mode random --probability 0.5") == 2  # both directions
    assert "statistic" not in after
