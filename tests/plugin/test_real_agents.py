"""The real-agent process manager (stack/real_agents.py) with a fake agent script, and the vantage's
log analysis (stack/agent_vantage.py) on synthetic and live logs. No certctl binary needed."""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from pytest_certload.stack import agent_vantage as vantage
from pytest_certload.stack.options import agent_binary
from pytest_certload.stack.process import RUNNING, ComponentFailed
from pytest_certload.stack.real_agents import ConnectionSampler, RealAgents, check_server_url
from pytest_certload.stack.secret import Secret

TOKEN = "tok-h8-must-never-show"
URL = "https://127.0.0.1:9"

FAKE_AGENT = """#!{python}
import json, os, signal, socket, sys, time
mode = os.environ.get("FAKE_MODE", "run")
print(json.dumps({{"msg": "agent starting", "agent_id": os.environ["CERTCTL_AGENT_ID"],
                  "env": sorted(os.environ), "key": os.environ["CERTCTL_API_KEY"]}}), flush=True)
if mode == "exit":
    print(json.dumps({{"msg": "bad config"}}), flush=True)
    sys.exit(1)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    def bye(*_):
        print(json.dumps({{"msg": "shutting down"}}), flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
conn = None
port = os.environ.get("FAKE_CONNECT_PORT")
if port:
    conn = socket.create_connection(("127.0.0.1", int(port)))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def fake_binary(tmp_path: Path, mode: str = "run", connect_port: int | None = None) -> Path:
    """A fake certctl-agent: logs JSON, runs until SIGTERM (``stubborn``: ignores it; ``exit``: exits 1)."""
    script = tmp_path / f"fake-agent-{mode}"
    env_lines = f"os.environ['FAKE_MODE'] = {mode!r}\n"
    if connect_port:
        env_lines += f"os.environ['FAKE_CONNECT_PORT'] = '{connect_port}'\n"
    body = FAKE_AGENT.format(python=sys.executable)
    first, rest = body.split("\n", 1)
    script.write_text(first + "\nimport os\n" + env_lines + rest)
    script.chmod(0o755)
    return script


def wait_for(check, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def logged(agents: RealAgents, msg: str) -> bool:
    return all(any(e.get("msg") == msg for e in a.log_events()) for a in agents.agents)


def test_agents_get_their_environment_and_are_stopped(tmp_path) -> None:
    ids = ["ag-1", "ag-2", "ag-3"]
    agents = RealAgents(fake_binary(tmp_path), ids, URL, Secret(TOKEN), tmp_path / "ca.pem", tmp_path / "w")
    with agents:
        wait_for(lambda: logged(agents, "agent starting"), what="every fake agent's first log line")
        pids = agents.pids()
        assert set(pids) == set(ids) and all(p in RUNNING for p in pids.values())
        agents.check_running()
        for agent in agents.agents:
            start = agent.log_events()[0]
            assert start["agent_id"] == agent.agent_id
            # LC_CTYPE: set by the fake agent's own Python at start (PEP 538 locale coercion), not by us
            assert set(start["env"]) - {"LC_CTYPE"} == {
                "PATH",
                "CERTCTL_SERVER_URL",
                "CERTCTL_API_KEY",
                "CERTCTL_AGENT_ID",
                "CERTCTL_AGENT_NAME",
                "CERTCTL_KEY_DIR",
                "CERTCTL_SERVER_CA_BUNDLE_PATH",
                "FAKE_MODE",
            }
            assert start["key"] == TOKEN  # the child got the plain token ...
        tails = agents.log_tails()
        assert TOKEN not in tails and "***" in tails  # ... and it is scrubbed from what we print
        assert TOKEN not in repr(agents)
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids.values()
    )
    assert not set(pids.values()) & set(RUNNING)
    assert logged(agents, "shutting down")  # SIGTERM first: the agent's graceful path ran


def test_an_agent_ignoring_sigterm_is_killed(tmp_path) -> None:
    agents = RealAgents(
        fake_binary(tmp_path, "stubborn"), ["ag-x"], URL, TOKEN, None, tmp_path / "w", stop_timeout=0.5
    )
    agents.start()
    wait_for(lambda: logged(agents, "agent starting"), what="the stubborn agent's log line")
    started = time.monotonic()
    agents.stop()
    assert time.monotonic() - started < 5
    assert agents.agents[0].process.popen.returncode == -9
    assert "killed by signal 9" in agents.exited()["ag-x"]


def test_agents_are_stopped_when_the_body_fails(tmp_path) -> None:
    agents = RealAgents(fake_binary(tmp_path), ["ag-a", "ag-b"], URL, TOKEN, None, tmp_path / "w")
    with pytest.raises(RuntimeError, match="assertion in the test body"), agents:
        pids = list(agents.pids().values())
        raise RuntimeError("assertion in the test body")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_an_agent_that_exits_is_named_with_its_log(tmp_path) -> None:
    with RealAgents(fake_binary(tmp_path, "exit"), ["ag-bad"], URL, TOKEN, None, tmp_path / "w") as agents:
        wait_for(lambda: "ag-bad" in agents.exited(), what="the failing agent to exit")
        with pytest.raises(ComponentFailed, match=r"certctl-agent ag-bad.*exited with code 1") as info:
            agents.check_running()
        assert "bad config" in str(info.value) and TOKEN not in str(info.value)


def test_a_binary_that_cannot_start_stops_the_ones_started(tmp_path) -> None:
    agents = RealAgents(tmp_path / "missing", ["ag-1"], URL, TOKEN, None, tmp_path / "w")
    with pytest.raises(ComponentFailed, match="could not start"):
        agents.start()
    assert agents.agents == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [("http://127.0.0.1:8443", "https"), ("https://certctl.example.com", "loopback")],
)
def test_server_url_must_be_https_on_loopback(url, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        check_server_url(url)


def test_sampler_counts_each_agents_established_connections(tmp_path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        binary = fake_binary(tmp_path, connect_port=port)
        with RealAgents(binary, ["ag-1", "ag-2"], URL, TOKEN, None, tmp_path / "w") as agents:
            wait_for(lambda: len(accepted) == 2, what="both fake agents to connect")
            with ConnectionSampler(agents, port, every=0.1) as sampler:
                wait_for(lambda: sampler.readings.samples >= 3, what="three samples")
            readings = sampler.readings
    finally:
        stop.set()
        thread.join(5)
        for s in accepted:
            s.close()
        listener.close()
    assert readings.most_at_once == {"ag-1": 1, "ag-2": 1}
    assert readings.distinct("ag-1") == 1 and readings.ports_seen["ag-1"] != readings.ports_seen["ag-2"]


def test_agent_binary_option_and_env(tmp_path, monkeypatch) -> None:
    binary = fake_binary(tmp_path)
    monkeypatch.delenv("CERTLOAD_CERTCTL_AGENT_BIN", raising=False)
    assert agent_binary(None) is None
    assert agent_binary(str(binary)) == binary.resolve()
    monkeypatch.setenv("CERTLOAD_CERTCTL_AGENT_BIN", str(binary))
    assert agent_binary(None) == binary.resolve()
    monkeypatch.setenv("CERTLOAD_CERTCTL_AGENT_BIN", str(tmp_path / "nope"))
    with pytest.raises(pytest.UsageError, match=r"env CERTLOAD_CERTCTL_AGENT_BIN=.*no executable file"):
        agent_binary(None)
    with pytest.raises(pytest.UsageError, match=r"--certctl-agent-bin .*no executable file"):
        agent_binary(str(tmp_path))


# -- the vantage: log analysis ------------------------------------------------------------------------


def synthetic(
    agent: str, start: float, heartbeat: list[float], poll: list[float]
) -> list[vantage.AgentRequest]:
    reqs = [
        vantage.AgentRequest(start + t, agent, "heartbeat", 1, "HTTP/2.0", "h2", 200, 32) for t in heartbeat
    ]
    reqs += [vantage.AgentRequest(start + t, agent, "poll", 1, "HTTP/2.0", "h2", 200, 22) for t in poll]
    return sorted(reqs, key=lambda r: r.t)


def test_steady_rates_skip_start_up_bursts_and_pool_intervals() -> None:
    # first poll at 40 s, two buffered ticks taken at once (a burst), then 60 s / 30 s exactly
    log = synthetic("a", 0, [20, 40.01, 100.01, 160.01], [40, 40.005, 40.01, 70.01, 100.01, 130.01, 160.01])
    pop = vantage.Population.of("real", ["a"], log)
    rates = vantage.steady_rates(pop, window_end=170.0)
    assert rates["heartbeat"].intervals == pytest.approx([60])  # the 40.01 one is in the start-up burst
    assert rates["poll"].intervals == pytest.approx([30, 30, 30])
    assert rates["heartbeat"].per_min == pytest.approx(1.0) and rates["poll"].per_min == pytest.approx(2.0)
    assert rates["poll"].counted_per_min == pytest.approx(4 / (170 - 42) * 60)


def test_compare_mix_flags_a_cadence_outside_the_jitters_bound() -> None:
    def rates(hb: float, poll: float, n: int):
        return {
            "heartbeat": vantage.StepRate("heartbeat", [hb] * n, n, 600),
            "poll": vantage.StepRate("poll", [poll] * n, n, 600),
        }

    assert vantage.compare_mix(rates(60, 30, 10), rates(61, 29.5, 10)) == []
    problems = vantage.compare_mix(rates(60, 30, 10), rates(60, 45, 10))  # a simulator polling every 45 s
    assert len(problems) == 2 and all(p.startswith("poll:") for p in problems)
    assert vantage.compare_mix(rates(60, 30, 10), {"heartbeat": vantage.StepRate("heartbeat", [], 0, 0)})
    # 4 standard errors of a mean of uniform +-10 % intervals, plus 0.5 s
    assert vantage.interval_tolerance(60, 12, 12) == pytest.approx(4 * 6 / 3**0.5 * (2 / 12) ** 0.5 + 0.5)


def test_read_log_attributes_requests_and_verify_reports(tmp_path) -> None:
    rows = [
        {
            "t": 1.0,
            "conn": 7,
            "proto": "HTTP/2.0",
            "method": "GET",
            "uri": "/api/v1/agents/a/work",
            "status": 200,
        },
        {
            "t": 2.0,
            "conn": 7,
            "proto": "HTTP/2.0",
            "method": "POST",
            "uri": "/api/v1/agents/a/csr",
            "status": 202,
        },
        {"t": 3.0, "conn": 7, "method": "POST", "uri": "/api/v1/agents/a/jobs/j1/status", "status": 200},
        {"t": 4.0, "conn": 7, "method": "GET", "uri": "/api/v1/agents/a/certificates/mc-1", "status": 200},
        {"t": 5.0, "conn": 7, "method": "POST", "uri": "/api/v1/jobs/j1/verify", "status": 403},
        {"t": 6.0, "conn": 8, "method": "GET", "uri": "/api/v1/health", "status": 200},
    ]
    path = tmp_path / "access.log"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    log = vantage.read_log(path)
    assert [(r.agent, r.step) for r in log] == [
        ("a", "poll"),
        ("a", "csr"),
        ("a", "status"),
        ("a", "pickup"),
        ("a", "verify_report"),
    ]
    seq = vantage.renewal_sequence(vantage.Population.of("real", ["a"], log), "a", since=0.0)
    assert seq == ["csr 202", "status 200", "pickup 200", "verify_report 403"]


def test_the_proxy_refuses_a_non_loopback_upstream(tmp_path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        vantage.nginx_config(tmp_path, 1, "https://certctl.example.com:8443", None)  # type: ignore[arg-type]


@pytest.mark.skipif(vantage.nginx_binary() is None, reason="nginx is not installed")
def test_the_proxy_logs_protocol_connection_and_step(tmp_path) -> None:
    class Upstream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b'{"jobs":[],"count":0}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = vantage.start_agent_proxy(tmp_path / "proxy", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with httpx.Client(http2=True, verify=proxy.tls.client_context()) as client:
            for _ in range(2):
                assert (
                    client.post(f"{proxy.url}/api/v1/agents/ag-1/heartbeat", content=b"{}").status_code == 200
                )
                assert client.get(f"{proxy.url}/api/v1/agents/ag-1/work").status_code == 200
        with httpx.Client(http2=False, verify=proxy.tls.client_context()) as client:
            client.get(f"{proxy.url}/api/v1/agents/ag-2/work")
        wait_for(lambda: len(proxy.requests()) == 5, what="five logged requests")
    finally:
        proxy.stop()
        server.shutdown()
        thread.join(5)
    pop = vantage.Population.of("x", ["ag-1", "ag-2"], proxy.requests())
    assert pop.counts() == {"heartbeat": 2, "poll": 3}
    assert pop.connections() == {"ag-1": 1, "ag-2": 1}
    assert {r.agent: (r.proto, r.alpn) for r in pop.requests} == {
        "ag-1": ("HTTP/2.0", "h2"),
        "ag-2": ("HTTP/1.1", "http/1.1"),
    }
    assert not os.path.exists(tmp_path / "proxy" / "nginx.pid") or not proxy.process.alive()


def test_reactions_cut_a_renewal_at_each_poll_that_brought_work() -> None:
    seq = ["poll+work", "csr 202", "poll+work", "status 200", "pickup 200", "verify_report 403", "status 200"]
    assert vantage.reactions(seq) == [("csr 202",), ("status 200", "pickup 200", "status 200")]
    assert all(r in vantage.REACTIONS for r in vantage.reactions(seq))
    assert vantage.reactions(["csr 202", "poll+work"]) == [()]  # nothing before the first poll counts
