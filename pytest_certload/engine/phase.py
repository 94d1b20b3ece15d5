"""run_phase: one or several scenarios concurrently in one event loop, plus generator health."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from time import monotonic_ns

from pytest_certload.engine.executors import make_executor
from pytest_certload.engine.health import MAX_CPU_FRACTION, MAX_LAG_P99_MS, GeneratorHealth, HealthMonitor
from pytest_certload.engine.http import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, HttpClient
from pytest_certload.engine.recording import ScenarioRecorder
from pytest_certload.engine.scenario import LATE_START_TOLERANCE_NS, ScenarioRun, ScenarioRuntime
from pytest_certload.stats import PhaseResult, Recorder

# Scenarios are set up before the first arrival is due, so arrival 0 is not late by set-up time.
_START_LEAD_NS = 20_000_000


@dataclass
class PhaseOutcome:
    result: PhaseResult
    health: GeneratorHealth

    @property
    def meta(self) -> dict:
        return self.result.meta


def event_loop_factory(use_uvloop: bool = True):
    """uvloop's loop when importable (2-3x less CPU per request), else asyncio's."""
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            pass
    return asyncio.new_event_loop


def run_phase(
    runs: Sequence[ScenarioRun],
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
    use_uvloop: bool = True,
    max_lag_p99_ms: float = MAX_LAG_P99_MS,
    max_cpu_fraction: float = MAX_CPU_FRACTION,
    start_at: float | None = None,
) -> PhaseOutcome:
    """Run ``runs`` to completion in a fresh event loop (uvloop when present) and return the outcome.

    ``start_at`` (wall-clock epoch seconds) puts time zero of every schedule at that instant, so
    xdist workers running interleaved shares (``ExecutorSpec.with_share``) share one clock;
    by default the phase starts 20 ms from now.
    """
    factory = event_loop_factory(use_uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(
            run_phase_async(
                runs,
                ssl_context=ssl_context,
                timeout=timeout,
                max_connections_per_origin=max_connections_per_origin,
                max_lag_p99_ms=max_lag_p99_ms,
                max_cpu_fraction=max_cpu_fraction,
                start_at=start_at,
            )
        )


async def run_phase_async(
    runs: Sequence[ScenarioRun],
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
    max_lag_p99_ms: float = MAX_LAG_P99_MS,
    max_cpu_fraction: float = MAX_CPU_FRACTION,
    start_at: float | None = None,
) -> PhaseOutcome:
    """The same as :func:`run_phase`, inside an already running loop."""
    names = [r.name for r in runs]
    if not runs:
        raise ValueError("run_phase needs at least one ScenarioRun")
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be unique in a phase, got {names}")
    recorder = Recorder()
    client = HttpClient(ssl_context, timeout=timeout, max_connections_per_origin=max_connections_per_origin)
    runtimes = [ScenarioRuntime(r, client, ScenarioRecorder(recorder, r.name, dict(r.tags))) for r in runs]
    executors = [make_executor(rt) for rt in runtimes]
    monitor = HealthMonitor(max_lag_p99_ms, max_cpu_fraction)
    monitor.start()
    wall_start = time.time()
    if start_at is None:
        t0 = monotonic_ns() + _START_LEAD_NS
    else:
        t0 = monotonic_ns() + round((start_at - time.time()) * 1e9)
    scenario_bounds: dict[str, tuple[float, float]] = {}

    async def one(executor) -> None:
        began = time.time()
        try:
            await executor.run(t0)
        finally:
            scenario_bounds[executor.runtime.name] = (began, time.time())

    try:
        await asyncio.gather(*(one(e) for e in executors))
    finally:
        health = monitor.stop()
        wall_end = time.time()
        client.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run before the loop may close
    scenarios = {}
    for executor in executors:
        rt = executor.runtime
        rec = rt.recorder
        rec.count("iterations", rt.completed)
        rec.count("dropped_iterations", executor.meta()["dropped_iterations"])
        rec.count("late_starts", rt.late)
        rec.count("interrupted_iterations", rt.interrupted)
        rec.flush()
        began, ended = scenario_bounds.get(rt.name, (wall_start, wall_end))
        scenarios[rt.name] = {**executor.meta(), **rt.meta(), "started_at": began, "ended_at": ended}
    meta = {
        "started_at": wall_start,
        "ended_at": wall_end,
        "wall_seconds": wall_end - wall_start,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "late_start_tolerance_ms": LATE_START_TOLERANCE_NS / 1e6,
        "scenarios": scenarios,
        "health": health.to_dict(),
    }
    return PhaseOutcome(recorder.result(meta), health)
