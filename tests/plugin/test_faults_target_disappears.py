"""A target that disappears mid-phase: counted connection errors, bounded timeouts, a phase that ends
on time, a summary written, and nothing left behind (no process, no socket).

The inner session loads the calibration server (tests/plugin/calibration.py, its own process) at
50 req/s for 3 s; a fault scenario (pytest_certload/faults/) sends it SIGKILL (it is gone: refused
connections) or SIGSTOP (it is still there but answers nothing: timeouts) one second in. Requests
carry a 0.5 s timeout (the scenario's ``timeout`` option).
"""

from __future__ import annotations

import json

import psutil
import pytest

pytest_plugins = ["pytester"]

PHASE_S, TIMEOUT_S, GRACEFUL_S = 3.0, 0.5, 1.0

CONFTEST = """
import json, signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from calibration import start_server  # the inner session runs in this process: tests/plugin is on sys.path


@pytest.fixture
def target(tmp_path):
    proc, url = start_server(tmp_path)
    Path("target.json").write_text(json.dumps({"pid": proc.popen.pid, "port": urlsplit(url).port}))
    yield url, proc.popen.pid
    proc.stop(5, signal.SIGKILL)  # a stopped process cannot act on SIGTERM
"""

SUITE = """
import json, os, signal
from pathlib import Path

from pytest_certload.faults import FaultWatch, Injector, fault_failure, fault_scenario

SIGNAL = signal.SIGNAL_NAME


class Disappear(Injector):
    kind = "target_disappears"

    def __init__(self, pid):
        super().__init__()
        self.pid = pid

    def describe(self):
        return f"target pid {self.pid} gets {SIGNAL.name}"

    def _inject(self):
        os.kill(self.pid, SIGNAL)


def test_target_disappears(certload, target):
    url, pid = target
    watch = FaultWatch(p95_limit_ms=1000)

    async def fast(ctx):
        await ctx.request("GET", url + "/fast")

    load = {"executor": "constant-arrival-rate", "rate": 50, "duration": "PHASE_Ss",
            "pre_allocated_vus": 10, "max_vus": 100, "graceful_stop": "GRACEFUL_Ss", "timeout": "TIMEOUT_Ss"}
    fault = fault_scenario(Disappear(pid), watch, at_s=1.0, phase_s=PHASE_S, settle_s=1.0)
    result = certload.run_many({"load": (watch.wrap(fast), load), "fault": fault})
    assert fault_failure(result.samples) is None
    errors = {}
    for (name, tags), n in result.samples.counters.items():
        tags = dict(tags)
        if name == "http_reqs" and tags.get("scenario") == "load" and tags["status"] == "0":
            errors[tags["error"]] = errors.get(tags["error"], 0) + n
    failed = [o.end_ns - o.start_ns for o in watch.outcomes if not o.ok]
    Path("figures.json").write_text(json.dumps({
        "errors": errors,
        "requests": result.samples.select_counter("http_reqs", {"scenario": "load"}),
        "wall_seconds": result.samples.meta["wall_seconds"],
        "longest_failure_s": max(failed) / 1e9 if failed else None,
        "recovered": list(result.samples.select_rate("fault_recovered")),
    }))
"""


def suite(signal_name: str) -> str:
    values = {
        "SIGNAL_NAME": signal_name,
        "TIMEOUT_S": TIMEOUT_S,
        "PHASE_S": PHASE_S,
        "GRACEFUL_S": GRACEFUL_S,
    }
    text = SUITE
    for key, value in values.items():
        text = text.replace(key, str(value))
    return text


def own_sockets_to(port: int) -> list:
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


@pytest.mark.parametrize(
    ("signal_name", "kinds"),
    [
        # a request in flight when the process dies is reset by the kernel; every later one is refused
        ("SIGKILL", {"connection_refused", "connection_reset", "connection_error"}),
        ("SIGSTOP", {"timeout"}),
    ],
)
def test_a_target_that_disappears_mid_phase(pytester, signal_name, kinds):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gone=suite(signal_name))
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = pytester.runpytest("-p", "no:cacheprovider", "--certload-summary=s.json")
    result.assert_outcomes(passed=1)
    figures = json.loads((pytester.path / "figures.json").read_text())
    target = json.loads((pytester.path / "target.json").read_text())

    # the failures are counted, by kind, and only the kinds this disappearance causes
    assert figures["errors"], figures
    assert set(figures["errors"]) <= kinds, figures
    assert figures["recovered"] == [0, 1]  # it never came back, and the fault scenario says so
    # bounded: no failed request outlived its timeout by much; the phase ended on time
    assert figures["longest_failure_s"] < TIMEOUT_S + 0.5
    assert figures["wall_seconds"] < PHASE_S + TIMEOUT_S + GRACEFUL_S + 1.5
    # the summary was written, with the failures in it
    doc = json.loads((pytester.path / "s.json").read_text())
    load = doc["scenarios"]["load"]
    assert load["requests"] == figures["requests"] > 0
    # nothing left behind: the target process is gone and no socket of ours points at it
    assert not psutil.pid_exists(target["pid"]) or psutil.Process(target["pid"]).status() == "zombie"
    assert own_sockets_to(target["port"]) == []
    children_after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert children_after <= children_before
