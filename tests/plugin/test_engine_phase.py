"""run_phase: several scenarios at once, scripted iterations, errors, graceful stop, generator health."""

from __future__ import annotations

import time

import calibration  # tests/plugin/calibration.py (pytest puts this directory on sys.path)
import numpy as np
import pytest

from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase
from pytest_certload.stack.tls import make_tls_material


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tls):
    proc, url = calibration.start_server(tmp_path_factory.mktemp("calibration"), tls=tls)
    yield url
    proc.stop()


def spec(**options) -> ExecutorSpec:
    return ExecutorSpec.from_options(options)


def test_scenarios_run_concurrently_with_scripted_steps(server, tls):
    """Three executors in one loop; a directory -> HEAD nonce -> renewal-info script with think time."""
    nonces: list[str] = []

    async def acme(ctx):
        directory = await ctx.request("GET", server + "/fast", tags={"step": "directory"})
        assert directory.status == 200
        nonce = await ctx.request("HEAD", server + "/fast", tags={"step": "nonce"})
        nonces.append(nonce.headers["content-length"])
        await ctx.sleep(0.05)  # think time
        info = await ctx.request(
            "GET", server + "/chunked?n=2", tags={"step": "renewal-info"}, new_connection=True
        )
        assert info.body == b"chunk-0;chunk-1;"

    async def heartbeat(ctx):
        await ctx.request("POST", server + "/echo", body=b'{"status":"ok"}', tags={"step": "heartbeat"})

    async def browse(ctx):
        await ctx.request("GET", server + "/fast", tags={"step": "browse"})
        await ctx.sleep(0.02)

    runs = [
        ScenarioRun(
            "acme_flow",
            spec(executor="constant-arrival-rate", rate=20, duration="2s", pre_allocated_vus=5, max_vus=20),
            acme,
            {"target_type": "acme"},
        ),
        ScenarioRun(
            "agent_storm",
            spec(
                executor="ramping-arrival-rate",
                start_rate=10,
                pre_allocated_vus=5,
                stages=[{"target": 100, "duration": "1s"}, {"target": 100, "duration": "1s"}],
            ),
            heartbeat,
        ),
        ScenarioRun("browsers", spec(executor="constant-vus", vus=3, duration="2s"), browse),
    ]
    t0 = time.monotonic()
    outcome = run_phase(runs, ssl_context=tls.client_context())
    assert time.monotonic() - t0 < 4.0  # concurrent, not one after the other
    r = outcome.samples
    meta = outcome.meta["scenarios"]
    assert meta["acme_flow"]["completed_iterations"] == 40 and len(nonces) == 40
    assert r.select_counter("http_reqs", {"scenario": "acme_flow", "step": "renewal-info"}) == 40
    assert r.select_counter("http_reqs", {"target_type": "acme"}) == 120
    tls_new = r.select_trend("http_req_tls_handshaking", {"step": "renewal-info"})
    assert (tls_new > 0).all()  # new_connection: every one handshakes
    assert (r.select_trend("http_req_tls_handshaking", {"step": "nonce"}) == 0).all()  # reused
    iteration_ms = r.select_trend("iteration_duration", {"scenario": "acme_flow"}) / 1e6
    assert iteration_ms.min() >= 50  # think time is inside the iteration
    # ramp 10 -> 100 over 1 s (55 arrivals) then 100/s for 1 s
    assert meta["agent_storm"]["scheduled_arrivals"] == 155
    assert (
        r.select_counter("iterations", {"scenario": "agent_storm"})
        == 155 - meta["agent_storm"]["dropped_iterations"]
    )
    assert meta["browsers"]["vus"] == 3 and meta["browsers"]["target_rate"] is None
    assert 30 <= r.select_counter("iterations", {"scenario": "browsers"}) <= 300
    assert r.select_rate("http_req_failed") == (0, r.select_counter("http_reqs"))
    for name in ("acme_flow", "agent_storm", "browsers"):
        assert meta[name]["started_at"] >= outcome.meta["started_at"]
        assert meta[name]["ended_at"] <= outcome.meta["ended_at"]


def test_iteration_exceptions_are_counted_and_do_not_stop_the_phase(server, tls):
    async def flaky(ctx):
        await ctx.request("GET", server + "/fast")
        if ctx.iteration % 3 == 0:
            raise KeyError("missing field")
        if ctx.iteration % 3 == 1:
            assert False, "bad body"  # noqa: B011

    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(executor="constant-arrival-rate", rate=60, duration="1s", pre_allocated_vus=5),
                flaky,
            )
        ],
        ssl_context=tls.client_context(),
    )
    r = outcome.samples
    assert r.select_counter("iteration_errors", {"error": "KeyError"}) == 20
    assert r.select_counter("iteration_errors", {"error": "AssertionError"}) == 20
    assert r.select_counter("iterations", {"scenario": "s"}) == 20
    assert r.select_counter("http_reqs") == 60
    samples = outcome.meta["scenarios"]["s"]["iteration_error_samples"]
    assert samples and any("missing field" in s for s in samples)


def test_graceful_stop_cancels_and_counts_interrupted_iterations(server, tls):
    async def slow(ctx):
        await ctx.request("GET", server + "/fast")
        await ctx.sleep(0.2 if ctx.iteration < 5 else 30)  # the last five outlive the phase

    t0 = time.monotonic()
    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(
                    executor="constant-arrival-rate",
                    rate=10,
                    duration="1s",
                    pre_allocated_vus=10,
                    graceful_stop="300ms",
                ),
                slow,
            )
        ],
        ssl_context=tls.client_context(),
    )
    took = time.monotonic() - t0
    assert 1.2 <= took < 2.5  # 1 s schedule + 0.3 s graceful stop, not 30 s
    r = outcome.samples
    assert r.select_counter("interrupted_iterations") == 5
    assert r.select_counter("iterations") == 5
    assert outcome.meta["scenarios"]["s"]["interrupted_iterations"] == 5


def test_a_blocked_generator_counts_late_starts_and_reports_saturation(server, tls):
    """The iteration blocks the loop (a CPU-bound step): arrivals start late, lag and CPU are high.

    30 ms of CPU per iteration at 40/s asks for 120 % of a core: arrivals fall further behind.
    The lag bound is the default; the CPU bound is lowered to 30 % because other work sharing this
    2-vCPU machine can keep our process from reaching the default 85 % - the test checks the
    mechanism, not the machine.
    """

    async def hog(ctx):
        await ctx.request("GET", server + "/fast")
        end = time.process_time() + 0.03
        while time.process_time() < end:
            pass

    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(
                    executor="constant-arrival-rate",
                    rate=40,
                    duration="1500ms",
                    pre_allocated_vus=5,
                    max_vus=100,
                ),
                hog,
            )
        ],
        ssl_context=tls.client_context(),
        max_cpu_fraction=0.3,
    )
    health = outcome.health
    meta = outcome.meta["scenarios"]["s"]
    assert meta["late_starts"] > 10
    assert health.saturated
    assert "lag" in health.reason and "CPU" in health.reason, health
    assert health.lag_p99_ms > 10 and health.cpu_fraction > 0.3
    assert outcome.meta["health"]["saturated"] is True
    lag = outcome.samples.select_trend("iteration_start_lag") / 1e6
    duration = outcome.samples.select_trend("http_req_duration") / 1e6
    service = outcome.samples.select_trend("http_req_service_time") / 1e6
    # the lateness is inside the corrected duration, not the service time
    assert np.percentile(duration, 90) > np.percentile(service, 90) + 10
    assert np.percentile(lag, 90) > 10


def test_an_idle_generator_is_healthy(server, tls):
    async def light(ctx):
        await ctx.request("GET", server + "/fast")

    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(executor="constant-arrival-rate", rate=50, duration="1s", pre_allocated_vus=5),
                light,
            )
        ],
        ssl_context=tls.client_context(),
    )
    assert not outcome.health.saturated, outcome.health.reason
    assert outcome.health.lag_samples >= 80  # a tick every 10 ms over ~1 s
    assert 0 < outcome.health.cpu_fraction < 0.85


def test_xdist_shares_split_the_schedule_between_processes(server, tls):
    """Two 'workers' (here: two phases) with shares 0/2 and 1/2 run disjoint halves of one schedule."""
    seen: list[list[int]] = [[], []]
    options = {"executor": "constant-arrival-rate", "rate": 50, "duration": "1s", "pre_allocated_vus": 5}
    for index in (0, 1):

        async def it(ctx, index=index):
            seen[index].append(ctx.iteration)
            await ctx.request("GET", server + "/fast")

        outcome = run_phase(
            [ScenarioRun("s", ExecutorSpec.from_options(options).with_share(index, 2), it)],
            ssl_context=tls.client_context(),
        )
        assert outcome.meta["scenarios"]["s"]["target_rate"] == pytest.approx(25.0)
    assert sorted(seen[0] + seen[1]) == list(range(50))
    assert all(k % 2 == 0 for k in seen[0]) and all(k % 2 == 1 for k in seen[1])


def test_start_at_puts_time_zero_on_a_shared_wall_clock(server, tls):
    """xdist workers align their shares on one wall-clock instant (start_at, epoch seconds)."""
    starts: list[float] = []

    async def it(ctx):
        starts.append(time.time())
        await ctx.request("GET", server + "/fast")

    zero = time.time() + 0.4
    run_phase(
        [
            ScenarioRun(
                "s",
                spec(executor="constant-arrival-rate", rate=20, duration="500ms", pre_allocated_vus=2),
                it,
            )
        ],
        ssl_context=tls.client_context(),
        start_at=zero,
    )
    assert len(starts) == 10
    assert zero <= starts[0] < zero + 0.02  # arrival 0 is due at time zero, never earlier
    assert starts[-1] == pytest.approx(zero + 0.45, abs=0.02)  # arrival 9 at 9/20 s


def test_the_scheduler_keeps_the_schedule_without_timerfd(server, tls, monkeypatch):
    """Where timerfd is missing (not Linux) the scheduler falls back to whole-ms loop timers."""
    from pytest_certload.engine.executors import arrival

    monkeypatch.setattr(arrival, "PRECISE_WAKEUPS", False)

    async def light(ctx):
        await ctx.request("GET", server + "/fast")

    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(executor="constant-arrival-rate", rate=100, duration="1s", pre_allocated_vus=5),
                light,
            )
        ],
        ssl_context=tls.client_context(),
    )
    meta = outcome.meta["scenarios"]["s"]
    assert meta["started_iterations"] == 100 and meta["dropped_iterations"] == 0
    lag = outcome.samples.select_trend("iteration_start_lag") / 1e6
    assert lag.min() >= 0  # never early
    assert float(np.percentile(lag, 50)) < 2.0  # whole-ms timers, rounded up


def test_an_abort_check_stops_the_phase_early_with_its_reason(server, tls):
    """k6's abortOnFail: about once a second the check sees everything so far, including the counts
    the recorder only flushes at the end; a reason stops the phase as at the end of its duration."""
    seen: list[tuple[float, float, tuple[int, int], float, float, int]] = []

    async def failing(ctx):
        await ctx.request("GET", server + "/status/500")
        ctx.counter("custom_hits")

    def check(snapshot, elapsed_s):
        failed = snapshot.select_rate("http_req_failed")
        seen.append(
            (
                elapsed_s,
                snapshot.select_counter("http_reqs", {"scenario": "s"}),
                failed,
                snapshot.select_counter("custom_hits"),
                snapshot.select_counter("iterations"),
                snapshot.select_trend("http_req_duration").size,
            )
        )
        return f"{failed[0]} of {failed[1]} requests failed" if elapsed_s >= 2 else None

    t0 = time.monotonic()
    outcome = run_phase(
        [
            ScenarioRun(
                "s",
                spec(
                    executor="constant-arrival-rate",
                    rate=20,
                    duration="30s",
                    pre_allocated_vus=2,
                    graceful_stop="1s",
                ),
                failing,
            )
        ],
        ssl_context=tls.client_context(),
        abort_check=check,
    )
    took = time.monotonic() - t0
    assert 2.0 <= took < 5.0  # stopped after the second check, not after 30 s
    assert len(seen) == 2 and outcome.meta["abort_watch"]["checks"] == 2
    elapsed, reqs, (trues, total), hits, iterations, samples = seen[0]
    assert 0.95 <= elapsed < 1.6
    assert 15 <= reqs <= 25  # ~20 arrivals in the first second, none of them flushed yet
    assert trues == total == hits == iterations == samples == reqs
    assert seen[1][1] > reqs
    assert outcome.aborted == outcome.meta["aborted"] == "{} of {} requests failed".format(*seen[1][2])
    r = outcome.samples
    final = r.select_counter("http_reqs")
    assert seen[1][1] <= final < 70  # counted once each: snapshots never flushed anything
    assert final == r.select_trend("http_req_duration").size == r.select_rate("http_req_failed")[1]
    assert outcome.meta["scenarios"]["s"]["scheduled_arrivals"] < 70  # the schedule stopped (600 planned)


def test_an_abort_stops_constant_vus_within_the_graceful_stop(server, tls):
    async def stuck(ctx):
        await ctx.request("GET", server + "/fast")
        await ctx.sleep(0.05 if ctx.iteration < 10 else 30)  # from the 11th on, both VUs hang

    t0 = time.monotonic()
    outcome = run_phase(
        [
            ScenarioRun(
                "s", spec(executor="constant-vus", vus=2, duration="30s", graceful_stop="300ms"), stuck
            )
        ],
        ssl_context=tls.client_context(),
        abort_check=lambda snapshot, _: "stop" if snapshot.select_counter("http_reqs") >= 10 else None,
    )
    took = time.monotonic() - t0
    assert 1.2 <= took < 2.8  # first check at 1 s + 0.3 s graceful stop
    assert outcome.aborted == "stop"
    r = outcome.samples
    assert r.select_counter("iterations") == 10
    assert r.select_counter("interrupted_iterations") == 2


def test_a_failing_abort_check_warns_and_the_phase_runs_its_course(server, tls):
    def broken(snapshot, elapsed_s):
        raise ZeroDivisionError("no requests yet")

    async def light(ctx):
        await ctx.request("GET", server + "/fast")

    with pytest.warns(RuntimeWarning, match="abort check failed.*ZeroDivisionError"):
        outcome = run_phase(
            [
                ScenarioRun(
                    "s",
                    spec(executor="constant-arrival-rate", rate=10, duration="1500ms", pre_allocated_vus=2),
                    light,
                )
            ],
            ssl_context=tls.client_context(),
            abort_check=broken,
        )
    assert outcome.aborted is None
    assert outcome.meta["scenarios"]["s"]["started_iterations"] == 15
    assert outcome.meta["abort_watch"]["error"] == "ZeroDivisionError: no requests yet"


def test_snapshots_include_pending_counts_and_never_flush_them():
    """PhaseSnapshot reads ScenarioRecorder's pending counts without resetting them, and its trend
    views stay fixed while recording goes on (the hot path's arrays stay appendable)."""
    from types import SimpleNamespace

    from pytest_certload.engine.abort import PhaseSnapshot
    from pytest_certload.engine.http import Response
    from pytest_certload.engine.recording import ScenarioRecorder
    from pytest_certload.stats import Recorder

    recorder = Recorder()
    scenario = ScenarioRecorder(recorder, "s")
    failed = Response()
    failed.status = 503
    runtime = SimpleNamespace(recorder=scenario, completed=3, late=1, interrupted=0)
    executor = SimpleNamespace(runtime=runtime, meta=lambda: {"dropped_iterations": 4})
    for i in range(3):
        scenario.request(failed, 5 + i, 4, {"step": "a"}, True)
    scenario.count("custom", 2)
    snapshots = PhaseSnapshot(recorder, [executor])

    first = snapshots.take()
    assert first.select_counter("http_reqs", {"step": "a", "status": "503"}) == 3
    assert first.select_rate("http_req_failed", {"scenario": "s"}) == (3, 3)
    assert first.select_counter("custom") == 2
    counts = {n: first.select_counter(n) for n in ("iterations", "dropped_iterations", "late_starts")}
    assert counts == {"iterations": 3, "dropped_iterations": 4, "late_starts": 1}
    assert recorder.counters == {} and recorder.rates == {}  # nothing was flushed

    for i in range(3000):  # past the mirrors' first capacity: they grow, earlier views keep theirs
        scenario.request(failed, 100 + i, 4, {"step": "a"}, False)
    second = snapshots.take()
    assert first.select_trend("http_req_duration").tolist() == [5, 6, 7]
    durations = second.select_trend("http_req_duration")
    assert durations.size == 3003 and durations[-1] == 3099 and not durations.flags.writeable
    assert second.select_rate("http_req_failed") == (3, 3003)

    scenario.flush()  # the phase end still writes every count exactly once
    assert recorder.samples().select_counter("http_reqs") == 3003
    assert recorder.samples().select_counter("custom") == 2
