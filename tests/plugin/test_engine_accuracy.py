"""Does the engine measure what the server did? Ground truth from the calibration server.

The calibration server runs in its own process on asyncio's loop, whose timers never fire early,
and echoes every request's injected delay. Ground truth is therefore known per request.
"""

from __future__ import annotations

import urllib.request

import calibration  # tests/plugin/calibration.py (pytest puts this directory on sys.path)
import numpy as np
import pytest

from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase

QUANTILES = (50, 95, 99)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url = calibration.start_server(tmp_path_factory.mktemp("calibration"), seed=7)
    yield url
    proc.stop()


def arrival(rate: float, duration: str, max_vus: int) -> ExecutorSpec:
    return ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": rate,
            "duration": duration,
            "pre_allocated_vus": min(20, max_vus),
            "max_vus": max_vus,
            "graceful_stop": "5s",
        }
    )


def ms(result, metric: str, q: float) -> float:
    return float(np.percentile(result.select_trend(metric, {"scenario": "s"}), q)) / 1e6


def test_percentiles_match_the_injected_latency(server):
    """p50/p95/p99 of service time and corrected duration bracket the injected delays' percentiles.

    Derivation of the tolerance: for every request i the measured service time s_i = d_i + e_i,
    where d_i is the injected delay and e_i >= 0 (the server holds a response at least d_i; the
    client's clock starts before the send and stops after the last byte). So e_i >= 0 for every
    request, and since order statistics are monotone, p_q(d) <= p_q(s) exactly: a measured
    percentile below the truth is an engine bug, whatever the noise.
    From above, e_i = the server timer's overshoot (asyncio rounds epoll timeouts up to whole ms:
    <= 1 ms) + loopback and parsing (~0.1 ms) + the time either process waits for a CPU. The last
    term is the noisy one on a shared 2-vCPU VM: up to one scheduler slice (~3 ms) on each side.
    Hence: median e_i <= 2 ms (timer rounding + a little), p_50(s) <= p_50(d) + 3 ms, and for the
    tails, where a descheduled process can land, p_q(s) <= p_q(d) + 7 ms (1 + 2 x 3 ms).
    The corrected duration adds the iteration's start lag g_i >= 0 (duration_i = s_i + g_i), so
    p_q(s) <= p_q(duration) <= p_q(s) + max(g): we allow max(5 ms, the largest start lag the
    engine itself recorded + 1 ms) - the duration exceeds the service time only by the lateness.
    """
    pairs: list[tuple[int, int]] = []

    async def it(ctx):
        r = await ctx.request("GET", server + "/latency")
        pairs.append((int(r.headers["x-injected-delay-ns"]), r.end_ns - r.sent_ns))

    outcome = run_phase([ScenarioRun("s", arrival(200, "5s", 200), it)])
    result = outcome.samples
    assert len(pairs) == 1000 == len(result.select_trend("http_req_service_time", {"scenario": "s"}))
    injected, service = (np.array(x) / 1e6 for x in zip(*pairs, strict=True))
    overhead = service - injected
    assert overhead.min() >= 0, "a response measured faster than the server held it"
    assert float(np.median(overhead)) <= 2.0, float(np.median(overhead))
    lag_allowance = max(5.0, float(result.select_trend("iteration_start_lag").max()) / 1e6 + 1.0)
    for q, tolerance in ((50, 3.0), (95, 7.0), (99, 7.0)):
        t = float(np.percentile(injected, q))
        s = ms(result, "http_req_service_time", q)
        d = ms(result, "http_req_duration", q)
        assert t <= s <= t + tolerance, f"p{q}: injected {t:.2f} ms, service time {s:.2f} ms"
        assert s <= d <= s + lag_allowance, f"p{q}: service time {s:.2f} ms, corrected duration {d:.2f} ms"
    assert not outcome.health.saturated, outcome.health.reason


def test_arrival_rate_within_one_percent_over_ten_seconds(server):
    """200 req/s for 10 s: the schedule is kept in count (all 2000 started) and in time (the rate a
    wall clock sees between the first and last start is within 1 % of 200/s), with (almost) no late start."""

    async def it(ctx):
        await ctx.request("GET", server + "/fast")

    outcome = run_phase([ScenarioRun("s", arrival(200, "10s", 100), it)])
    meta = outcome.meta["scenarios"]["s"]
    assert meta["target_rate"] == pytest.approx(200.0)
    assert meta["achieved_rate"] == pytest.approx(200.0, rel=0.01)
    assert meta["achieved_rate_wall"] == pytest.approx(200.0, rel=0.01)
    assert meta["dropped_iterations"] == 0
    # a few starts more than 5 ms late happen when other work shares the 2 vCPUs; they are counted,
    # and their lateness is inside http_req_duration
    assert meta["late_starts"] <= 100
    result = outcome.samples
    assert result.select_counter("http_reqs", {"scenario": "s"}) == 2000
    assert result.select_rate("http_req_failed", {"scenario": "s"}) == (0, 2000)
    lag = result.select_trend("iteration_start_lag", {"scenario": "s"}) / 1e6
    # a timerfd wakes the loop for each arrival (engine/waker.py): the median start is ~0.1 ms late
    # here, against 0.5-0.75 ms with the loop's whole-millisecond timers
    assert float(np.percentile(lag, 50)) < 0.5
    assert outcome.meta["wall_seconds"] < 11.0
    assert not outcome.health.saturated, outcome.health.reason


def stall(server: str, after: float, seconds: float) -> None:
    req = urllib.request.Request(f"{server}/stall?after={after}&seconds={seconds}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_server_stall_shows_as_drops_and_in_the_corrected_tail(server):
    """k6's model: 200 arrivals/s, at most 20 in flight; the server freezes for 1 s mid-run.

    The 20 VUs are all stuck within 0.1 s of the stall, so about 200 - 20 = 180 arrivals are
    dropped (we allow 120-200: the stall's start moves against the arrival grid and loop turns).
    The stuck requests waited 0.9-1 s: 20 of ~620 measured (3 %) so p99 shows the stall in both
    service time and corrected duration; the drops are what k6 alone would show.
    """

    async def it(ctx):
        await ctx.request("GET", server + "/fast")

    stall(server, after=1.5, seconds=1.0)
    outcome = run_phase([ScenarioRun("s", arrival(200, "4s", 20), it)])
    meta = outcome.meta["scenarios"]["s"]
    assert 120 <= meta["dropped_iterations"] <= 200, meta
    assert (
        outcome.samples.select_counter("dropped_iterations", {"scenario": "s"}) == meta["dropped_iterations"]
    )
    assert ms(outcome.samples, "http_req_duration", 99) > 500
    assert ms(outcome.samples, "http_req_duration", 50) < 20  # outside the stall nothing changed


def test_server_stall_behind_a_connection_limit_is_corrected_not_hidden(server):
    """wrk2's case: enough VUs, but only 4 connections. During the 1 s freeze ~200 arrivals start
    on time and queue for a connection; once the server wakes they are sent and answered at once.

    Service time (from the actual send) sees only the 4 requests that were on the wire: 4 of 800
    (0.5 %), so its p99 stays small - the stall is hidden, as in any tool that times from the send.
    The corrected duration counts from when each request was due, so ~25 % of requests carry
    0-1 s of waiting and its p99 is near the stall length.
    """

    async def it(ctx):
        await ctx.request("GET", server + "/fast")

    stall(server, after=1.5, seconds=1.0)
    spec = arrival(200, "4s", 400)
    outcome = run_phase([ScenarioRun("s", spec, it)], max_connections_per_origin=4)
    meta = outcome.meta["scenarios"]["s"]
    assert meta["dropped_iterations"] == 0
    # iterations start on time and then wait for a connection (a few start late in the burst after
    # the freeze, or when other work shares the 2 vCPUs)
    assert meta["late_starts"] <= 40
    corrected_p99 = ms(outcome.samples, "http_req_duration", 99)
    service_p99 = ms(outcome.samples, "http_req_service_time", 99)
    assert corrected_p99 > 800, corrected_p99
    assert service_p99 < 50, service_p99
    slow = np.count_nonzero(outcome.samples.select_trend("http_req_duration", {"scenario": "s"}) > 100e6)
    assert 120 <= slow <= 240, slow  # the ~200 arrivals due during the freeze (minus the last 100 ms)
