"""run_phase: one or several scenarios concurrently in one event loop, plus generator health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from time import monotonic_ns

from pytest_certload.engine.abort import AbortCheck, AbortWatch, PhaseSnapshot, live_counts
from pytest_certload.engine.executors import iteration_counts, make_executor
from pytest_certload.engine.gc_pauses import FrozenHeap
from pytest_certload.engine.health import (
    MAX_CPU_FRACTION,
    MAX_LAG_P99_MS,
    MAX_QUEUE_P99_MS,
    GeneratorHealth,
    HealthMonitor,
)
from pytest_certload.engine.http import DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, HttpClient
from pytest_certload.engine.http2 import Http2Client
from pytest_certload.engine.recording import ScenarioRecorder
from pytest_certload.engine.scenario import LATE_START_TOLERANCE_NS, ScenarioRun, ScenarioRuntime
from pytest_certload.stats import PhaseSamples, Recorder
from pytest_certload.stats.timeline import TIMELINE_KEY, TimelineRecorder

# Progress callback: called on the loop about once a second, and once more at the end (final=True),
# with the seconds since time zero, the phase's TimelineRecorder and the Recorder's trend arrays.
Progress = Callable[[float, TimelineRecorder, dict, bool], None]
#: per-second marks (stats/timeline.py); benchmarks/bench_progress.py turns them off to measure them
TIMELINE = True

# Scenarios are set up before the first arrival is due, so arrival 0 is not late by set-up time.
_START_LEAD_NS = 20_000_000


@dataclass
class PhaseMeasurement:
    samples: PhaseSamples
    health: GeneratorHealth
    aborted: str | None = None  # the abort check's reason when it stopped the phase early
    interrupted: str | None = None  # what cut the phase short (Ctrl-C, SIGTERM), when something did

    @property
    def meta(self) -> dict:
        return self.samples.meta


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
    abort_check: AbortCheck | None = None,
    progress: Progress | None = None,
    tls_offload: bool = True,
    max_queue_p99_ms: float = MAX_QUEUE_P99_MS,
) -> PhaseMeasurement:
    """Run ``runs`` to completion in a fresh event loop (uvloop when present) and return the outcome.

    ``start_at`` (wall-clock epoch seconds) puts time zero of every schedule at that instant, so
    xdist workers running interleaved shares (``ExecutorSpec.with_share``) share one clock;
    by default the phase starts 20 ms from now.

    ``abort_check(snapshot, elapsed_s)`` (k6's abortOnFail) is called about once a second with a
    PhaseSamples of everything recorded so far; a non-empty string stops every scenario as at the
    end of its duration (in-flight iterations get the graceful stop) and becomes
    ``PhaseMeasurement.aborted``. When Ctrl-C or SIGTERM cuts the phase short, the exception carries
    what was measured until then as ``exc.certload_measurement`` (``interrupted`` set).

    Once a second the phase marks where every series stands (``meta["timeline"]``, for per-second
    reports) and calls ``progress`` (a live display), if given, on the loop.
    """
    factory = event_loop_factory(use_uvloop)
    partial: list[PhaseMeasurement] = []
    try:
        # the Runner's exit cancels what still runs (SIGTERM raised inside the loop), so the partial
        # measurement exists only after the with block
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
                    abort_check=abort_check,
                    progress=progress,
                    interrupted_out=partial,
                    tls_offload=tls_offload,
                    max_queue_p99_ms=max_queue_p99_ms,
                )
            )
    except BaseException as exc:
        if partial:  # what was measured before the interruption, for the summary
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            partial[0].samples.meta["interrupted"] = reason
            exc.certload_measurement = replace(partial[0], interrupted=reason)  # type: ignore[attr-defined]
        raise


async def run_phase_async(
    runs: Sequence[ScenarioRun],
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
    max_lag_p99_ms: float = MAX_LAG_P99_MS,
    max_cpu_fraction: float = MAX_CPU_FRACTION,
    start_at: float | None = None,
    abort_check: AbortCheck | None = None,
    progress: Progress | None = None,
    interrupted_out: list[PhaseMeasurement] | None = None,
    tls_offload: bool = True,
    max_queue_p99_ms: float = MAX_QUEUE_P99_MS,
) -> PhaseMeasurement:
    """The same as :func:`run_phase`, inside an already running loop.

    When the phase is cut short (Ctrl-C, SIGTERM: the task is cancelled) the exception propagates,
    and what was measured until then is appended to ``interrupted_out`` (marked ``interrupted``).
    """
    names = [r.name for r in runs]
    if not runs:
        raise ValueError("run_phase needs at least one ScenarioRun")
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names must be unique in a phase, got {names}")
    recorder = Recorder()
    # tls_offload=False: the loop's own TLS for HTTP/1.1 (before/after comparisons; engine/tls.py)
    client = HttpClient(
        ssl_context,
        timeout=timeout,
        max_connections_per_origin=max_connections_per_origin,
        tls_offload=tls_offload,
    )
    runtimes = [ScenarioRuntime(r, client, ScenarioRecorder(recorder, r.name, dict(r.tags))) for r in runs]
    executors = [make_executor(rt) for rt in runtimes]
    for rt in runtimes:  # HTTP/2 (or auto): one client, so one connection per origin, per VU
        version = getattr(rt.spec, "http_version", "1.1")
        if version != "1.1" and rt.client is client:  # (an executor may have installed its own)
            rt.use_vu_clients(
                lambda v=version: Http2Client(
                    client.ssl_context,
                    timeout=timeout,
                    max_connections_per_origin=max_connections_per_origin,
                    http_version=v,
                )
            )
    monitor = HealthMonitor(max_lag_p99_ms, max_cpu_fraction, max_queue_p99_ms)
    heap = FrozenHeap(asyncio.get_running_loop())
    monitor.start()
    wall_start = time.time()
    if start_at is None:
        t0 = monotonic_ns() + _START_LEAD_NS
    else:
        t0 = monotonic_ns() + round((start_at - time.time()) * 1e9)
    scenario_bounds: dict[str, tuple[float, float]] = {}
    watch = None
    if abort_check is not None:
        watch = AbortWatch(abort_check, PhaseSnapshot(recorder, executors), executors, t0)
        watch.start()

    # --- per-second marks and live progress (stats/timeline.py) -------------------------------------
    timeline = TimelineRecorder()
    cpu0 = time.process_time()
    shown: list[Progress] = [progress] if progress is not None else []

    def counts_now(executor) -> dict:
        rt = executor.runtime
        scheduled = getattr(executor, "scheduled", rt.started)
        started = {"started_iterations": rt.started, "scheduled_iterations": scheduled}
        return {**iteration_counts(executor), **started}

    def mark(final: bool = False) -> None:
        counters, rates = live_counts(recorder, executors, counts_now)
        elapsed = (monotonic_ns() - t0) / 1e9
        timeline.mark(elapsed, recorder.trends, counters, rates, time.process_time() - cpu0, monitor.lags)
        for show in shown:
            try:
                show(elapsed, timeline, recorder.trends, final)
            except Exception as exc:  # a broken display must not take the phase down
                shown.clear()
                warnings.warn(f"certload progress display off: {type(exc).__name__}: {exc}", stacklevel=1)

    async def clock() -> None:
        second = 1
        while True:
            delay = t0 + second * 1_000_000_000 - monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            mark()
            second = max(second + 1, (monotonic_ns() - t0) // 1_000_000_000 + 1)

    ticker = asyncio.get_running_loop().create_task(clock()) if TIMELINE else None
    # ---------------------------------------------------------------------------------------------------

    # a scenario's load begins at time zero, not when its coroutine starts waiting for it (xdist
    # workers wait up to a few hundred ms for a shared start_at): the summary's rates use this
    t0_wall = time.time() + (t0 - monotonic_ns()) / 1e9

    async def one(executor) -> None:
        began = max(time.time(), t0_wall)
        try:
            await executor.run(t0)
        finally:
            scenario_bounds[executor.runtime.name] = (began, time.time())

    closed: list[tuple[GeneratorHealth, float]] = []

    async def close() -> tuple[GeneratorHealth, float]:
        """Stop the watchers and the client once (normal end, or interrupted mid-phase)."""
        if not closed:
            if ticker is not None:
                ticker.cancel()
            if watch is not None:
                await watch.close()
            queue = [v for (name, _tags), v in recorder.trends.items() if name == "client_queue_time"]
            health = monitor.stop(queue)
            heap.__exit__(None, None, None)
            wall_end = time.time()
            client.close()
            for rt in runtimes:
                rt.close_clients()
            await asyncio.sleep(0)  # let the transports' close callbacks run before the loop may close
            # the closed connections' garbage (1-2 s of full collection after 10,000 agents, h9) is
            # collected now, outside any measurement, not in the next phase's first seconds
            gc.collect()
            closed.append((health, wall_end))
        return closed[0]

    def measurement(health: GeneratorHealth, wall_end: float, interrupted: str | None) -> PhaseMeasurement:
        scenarios = {}
        if TIMELINE:
            mark(final=True)  # before the counts below are flushed into the Recorder
        for executor in executors:
            rt = executor.runtime
            rec = rt.recorder
            for name, n in iteration_counts(executor).items():
                rec.count(name, n)
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
            "aborted": watch.reason if watch is not None else None,
            "abort_watch": watch.meta() if watch is not None else None,
            "interrupted": interrupted,
        }
        if TIMELINE:
            meta[TIMELINE_KEY] = timeline.to_meta()
        aborted = watch.reason if watch is not None else None
        return PhaseMeasurement(recorder.samples(meta), health, aborted, interrupted)

    # pytest's own heap (a long session's reports, fixtures, earlier phases) and the phase's long-lived
    # objects stay out of the collector's walks while the phase runs: a full collection stops the loop
    # for as long as it walks them (engine/gc_pauses.py); the phase's garbage is collected in close()
    heap.__enter__()
    try:
        await asyncio.gather(*(one(e) for e in executors))
    except BaseException as exc:  # Ctrl-C / SIGTERM cancel the phase: keep what was measured
        if interrupted_out is not None:
            with contextlib.suppress(BaseException):
                health, wall_end = await close()
                interrupted_out.append(measurement(health, wall_end, f"{type(exc).__name__} {exc}".strip()))
        raise
    finally:
        await close()
    health, wall_end = closed[0]
    return measurement(health, wall_end, None)
