"""Capacity search against a server whose capacity is known: it must bracket it within the resolution.

The server (this file run as a script, in its own process so its CPU is not the generator's) serves
one request at a time with a fixed service time: request k completes at
``max(arrival_k, completion_{k-1}) + S``. Completion times come from that virtual queue, not from
sleeps, so timer jitter delays a response a little but never lowers the throughput: the capacity is
exactly 1/S (10 ms -> 100 requests/s). Below it every request waits only its own S; above it the
queue grows for the whole step, so with p95 < 3 x S the pass/fail boundary of a 3 s step lies within
1 % above 1/S (backlog (r - C) x 3 s must stay under 2 x S x C / 0.95).

    python tests/plugin/test_capacity_calibration.py --service-ms 10   # prints "PORT <n>"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pytest_certload

SERVICE_MS = 10.0
CAPACITY = 1000.0 / SERVICE_MS
THRESHOLDS = {"http_req_duration": [f"p(95)<{3 * SERVICE_MS:g}"], "http_req_failed": ["rate<0.01"]}
REPO = Path(pytest_certload.__file__).resolve().parent.parent
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# -- the server -------------------------------------------------------------------------------------


class OneAtATime(asyncio.Protocol):
    """HTTP/1.1 GETs (no bodies, keep-alive), answered through one shared single-server queue."""

    free_at = 0.0  # when the one server finishes the last request admitted (loop time)
    service_s = SERVICE_MS / 1000

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            cls = type(self)
            done = max(loop.time(), cls.free_at) + cls.service_s
            cls.free_at = done
            loop.call_at(done, self._answer)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def _serve(service_ms: float) -> None:
    OneAtATime.service_s = service_ms / 1000
    server = await asyncio.get_running_loop().create_server(OneAtATime, "127.0.0.1", 0, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def start_known_server(service_ms: float = SERVICE_MS) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--service-ms", str(service_ms)], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the known-capacity server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


@pytest.fixture(scope="module")
def known_server():
    proc, url = start_known_server()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


# -- in this process ------------------------------------------------------------------------------


@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=30,
    duration="3s",
    pre_allocated_vus=5,
    max_vus=50,
    thresholds=THRESHOLDS,
    capacity={"max_rate": 400, "resolution": 0.05, "budget": "100s"},
)
def test_search_brackets_a_known_capacity_within_the_resolution(certload, known_server):
    async def iteration(ctx):
        await ctx.request("GET", known_server + "/")

    result = certload.capacity(iteration, name="known")
    result.assert_found()
    assert result.status == "bracketed", result.describe()
    assert result.width <= 0.05 + 1e-9
    # what held never exceeds the true capacity (beyond the 1 % a 3 s step cannot see), and what
    # failed is not below it by more than the resolution (noise near the boundary)
    assert result.holds <= CAPACITY * 1.01, result.describe()
    assert result.fails >= CAPACITY * 0.95, result.describe()
    # the curve: below capacity the latency is the service time, far above it the queue shows
    held = [r for r in result.runs if r.passed and r.rate <= 0.9 * CAPACITY]
    assert held and all(r.stats["p50_ms"] < 2 * SERVICE_MS for r in held)
    assert any(r.stats["p95_ms"] > 3 * SERVICE_MS for r in result.runs if r.rate >= 1.2 * CAPACITY)


# -- inner pytest sessions: the terminal, the summary, pytest-xdist -----------------------------------

CONFTEST = textwrap.dedent(
    f"""
    import os, sys
    import pytest

    sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
    from test_capacity_calibration import start_known_server

    SERVER = []

    def pytest_sessionstart(session):
        if not hasattr(session.config, "workerinput"):  # the controller (or the only process)
            proc, url = start_known_server()
            SERVER.append(proc)
            os.environ["KNOWN_URL"] = url

    def pytest_unconfigure(config):
        for proc in SERVER:
            proc.terminate()

    @pytest.fixture
    def known_server():
        return os.environ["KNOWN_URL"]
    """
)


def suite(rate: float, duration: str, capacity: dict) -> str:
    return textwrap.dedent(
        f"""
        import pytest
        from pytest_certload import capacity

        @pytest.mark.certload(executor="constant-arrival-rate", rate={rate}, duration={duration!r},
                              pre_allocated_vus=5, max_vus=50, thresholds={THRESHOLDS!r},
                              capacity={capacity!r})
        def test_known(certload, known_server):
            async def iteration(ctx):
                await ctx.request("GET", known_server + "/")
            result = certload.capacity(iteration, name="known", fleet=capacity.agent_heartbeats())
            result.assert_found()
        """
    )


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(CONFTEST)
    return pytester


def summary(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "s.json").read_text())


def test_plan_first_then_each_run_then_the_summary_entry(project):
    project.makepyfile(test_known=suite(40, "1.5s", {"max_rate": 200, "resolution": 0.25, "confirm": 1}))
    result = project.runpytest_subprocess("-s", "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    plan = out.index("capacity search known: 40/s x2 up to at most 200/s, then bisect to 25%")
    assert plan < out.index("capacity run 1 (ramp) 40/s: held")
    assert (
        "; at most 6 runs in at most 22.5s (graceful stops and cool-downs included)"
        in out[plan:].splitlines()[0]
    )
    result.stdout.fnmatch_lines(
        ["*certload capacity*", "known (test_known.py::test_known): holds at *, fails at *"]
    )
    (entry,) = summary(project)["capacity"]
    assert entry["status"] == "bracketed" and entry["test"] == "test_known.py::test_known"
    assert entry["holds_per_s"] <= CAPACITY * 1.01 <= entry["fails_per_s"] * 1.25
    assert entry["fleet"]["holds"] == pytest.approx(entry["holds_per_s"] * 60)
    assert [r["index"] for r in entry["curve"]] == list(range(1, len(entry["curve"]) + 1))
    assert all({"p50_ms", "p95_ms", "p99_ms", "error_rate"} <= set(r["stats"]) for r in entry["curve"])
    # every run is an ordinary phase of its own in the summary
    assert {r["scenario"] for r in entry["curve"]} <= set(summary(project)["scenarios"])


def test_under_xdist_each_step_is_one_merged_phase_and_the_search_reaches_the_summary(project):
    project.makepyfile(test_known=suite(30, "2s", {"max_rate": 300, "resolution": 0.1, "confirm": 1}))
    result = project.runpytest_subprocess("-n", "2", "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    doc = summary(project)
    (entry,) = doc["capacity"]
    assert entry["status"] == "bracketed", entry["text"]
    assert entry["holds_per_s"] <= CAPACITY * 1.01 and entry["fails_per_s"] >= CAPACITY * 0.9, entry["text"]
    for run in entry["curve"]:  # each run's phase: both workers' shares, merged
        step = doc["scenarios"][run["scenario"]]
        assert step["target_rate_per_s"] == pytest.approx(run["rate"])
        assert step["requests"] == pytest.approx(run["rate"] * 2, rel=0.02)
    health = [h for h in doc["generator_health"] if h["scenarios"][0] == entry["curve"][0]["scenario"]]
    assert len(health) == 1 and set(health[0]["workers"]) == {"gw0", "gw1"}


def test_a_saturated_generator_is_an_error_and_never_the_servers_capacity(project):
    project.makeini("[pytest]\ncertload_max_cpu_fraction = 0.0001\n")
    project.makepyfile(test_known=suite(40, "1s", {"max_rate": 200}))
    result = project.runpytest_subprocess("--certload-summary=s.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*GeneratorSaturated*generator saturated at 40/s*-n 2*"])
    (entry,) = summary(project)["capacity"]
    assert entry["status"] == "generator_saturated" and entry["holds_per_s"] is None
    assert entry["fails_per_s"] is None  # a saturated run is no verdict on the server
    assert [r["counted"] for r in entry["curve"]] == ["saturated", "saturated"]  # tried once more


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service-ms", type=float, default=SERVICE_MS)
    asyncio.run(_serve(parser.parse_args().service_ms))
