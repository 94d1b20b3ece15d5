"""What abortOnFail costs the event loop on a large phase: snapshot time and loop lag.

A phase's Recorder is filled as the engine fills it (five request trends, iteration duration and
start lag per request: 7 samples per request) with ``--requests`` requests, then:

- the cost of one full copy (``Recorder.samples()``, what a naive snapshot would do each second);
- the engine's snapshot in its two parts: ``capture`` (on the loop) and ``build`` (in the check's
  worker thread), first for everything at once, then per ``--rate`` more requests (one second of
  load) for ``--steps`` seconds, during which the mirrors grow once;
- the cost of the threshold check itself on that snapshot (p(95) of http_req_duration and the
  http_req_failed rate, both abortOnFail, never breached), and how long the main thread waits
  for the GIL while another thread computes such a percentile (what the loop pays for a check
  running in a worker thread);
- event-loop lag (the engine's HealthMonitor, 10 ms ticks) during ``--seconds`` of a loop that keeps
  recording ``--rate`` requests/s: with no check (baseline); while the engine's AbortWatch runs
  (its snapshot primed, as a watch that followed the phase from its start); and the naive way
  (full copy and check on the loop).

    python benchmarks/bench_abort_snapshot.py [--requests 300000] [--rate 2000] [--seconds 8] [--steps 100]

Writes ``benchmarks/results/abort_snapshot.json`` and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from pytest_certload.engine.abort import AbortWatch, PhaseSnapshot
from pytest_certload.engine.health import HealthMonitor
from pytest_certload.engine.http import Response
from pytest_certload.engine.phase import event_loop_factory
from pytest_certload.engine.recording import ScenarioRecorder
from pytest_certload.stats import Recorder
from pytest_certload.thresholds import abort_check, parse_thresholds

THRESHOLDS = {
    "http_req_duration": [{"threshold": "p(95)<60000", "abortOnFail": True}],
    "http_req_failed": [{"threshold": "rate<0.99", "abortOnFail": True}],
}
WAYS = {
    "none": "baseline: no abort check",
    "engine": "engine: incremental capture on the loop, build and check in a thread",
    "naive": "naive: full copy and check on the loop",
}


class Phase:
    """A Recorder and one scenario's recorder, plus the executor shape PhaseSnapshot reads."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.scenario = ScenarioRecorder(self.recorder, "bench")
        self.runtime = SimpleNamespace(recorder=self.scenario, completed=0, late=0, interrupted=0)
        self.executor = SimpleNamespace(runtime=self.runtime, meta=lambda: {"dropped_iterations": 0})
        self._ok, self._err = Response(), Response()
        self._ok.status, self._err.status = 200, 500
        self.n = 0

    def record(self, count: int) -> None:
        sc, rt = self.scenario, self.runtime
        for _ in range(count):
            i = self.n = self.n + 1
            failed = i % 50 == 0
            sc.request(self._err if failed else self._ok, 2_000_000 + i % 997, 1_500_000, None, failed)
            sc.iteration_duration.append(2_100_000)
            sc.start_lag.append(100_000)
            rt.completed += 1


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def static_costs(requests: int, rate: int, steps: int) -> dict:
    phase = Phase()
    phase.record(requests)
    samples = sum(len(v) for v in phase.recorder.trends.values())
    full = []
    for _ in range(5):
        t = time.perf_counter_ns()
        phase.recorder.samples()
        full.append(time.perf_counter_ns() - t)
    snap = PhaseSnapshot(phase.recorder, [phase.executor])
    t = time.perf_counter_ns()
    capture = snap.capture()
    first_capture = time.perf_counter_ns() - t
    t = time.perf_counter_ns()
    snapshot = snap.build(capture)
    first_build = time.perf_counter_ns() - t
    captures, builds = [], []
    for _ in range(steps):  # one second of load per step; the mirrors grow once on the way
        phase.record(rate)
        t = time.perf_counter_ns()
        capture = snap.capture()
        captures.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        snapshot = snap.build(capture)
        builds.append(time.perf_counter_ns() - t)
    check = abort_check(parse_thresholds(THRESHOLDS))
    checks = []
    for _ in range(5):
        t = time.perf_counter_ns()
        assert check(snapshot, 60.0) is None
        checks.append(time.perf_counter_ns() - t)
    assert snapshot.select_counter("http_reqs") == phase.n  # pending counts are in the snapshot
    return {
        "requests": requests,
        "trend_samples": samples,
        "full_copy_ms_median": ms(statistics.median(full)),
        "capture_first_ms": ms(first_capture),
        "build_first_ms": ms(first_build),
        "steps": steps,
        "capture_per_step_ms_median": ms(statistics.median(captures)),
        "capture_per_step_ms_max": ms(max(captures)),
        "build_per_step_ms_median": ms(statistics.median(builds)),
        "build_per_step_ms_max": ms(max(builds)),
        "check_ms_median": ms(statistics.median(checks)),
    }


async def lag_under_load(requests: int, rate: int, seconds: float, way: str) -> dict:
    phase = Phase()
    phase.record(requests)
    check = abort_check(parse_thresholds(THRESHOLDS))
    monitor = HealthMonitor()
    monitor.start()
    t0 = time.monotonic_ns()
    end = t0 + int(seconds * 1e9)
    watch = None
    naive_ns: list[int] = []
    if way == "engine":
        snapshot = PhaseSnapshot(phase.recorder, [phase.executor])
        snapshot.take()  # a watch follows its phase from the start: its mirrors hold the samples so far
        watch = AbortWatch(check, snapshot, [phase.executor], t0)
        watch.start()
    next_check = t0 + 1_000_000_000
    per_ms = max(1, rate // 1000)
    while time.monotonic_ns() < end:
        phase.record(per_ms)  # the hot path keeps recording, 1 ms worth at a time
        await asyncio.sleep(0.001)
        if way == "naive" and time.monotonic_ns() >= next_check:
            t = time.perf_counter_ns()
            check(phase.recorder.samples(), (time.monotonic_ns() - t0) / 1e9)
            naive_ns.append(time.perf_counter_ns() - t)
            next_check += 1_000_000_000
    if watch is not None:
        await watch.close()
    health = monitor.stop()
    out = {
        "way": WAYS[way],
        "requests_at_end": phase.n,
        "lag_p50_ms": round(health.lag_p50_ms, 3),
        "lag_p99_ms": round(health.lag_p99_ms, 3),
        "lag_max_ms": round(health.lag_max_ms, 3),
        "cpu_fraction": round(health.cpu_fraction, 3),
    }
    if watch is not None:
        out.update({k: v for k, v in watch.meta().items() if k.startswith(("snapshot", "checks"))})
    elif way == "naive":
        out["loop_blocked_per_check_ms_max"] = ms(max(naive_ns)) if naive_ns else 0.0
    return out


def gil_hold(samples: int, seconds: float = 1.0) -> dict:
    """How long the main thread waits for the GIL while a thread repeats one percentile over
    ``samples`` values (the core of a p(95) threshold): numpy's partition holds the GIL."""
    values = np.random.default_rng(1).integers(1_000_000, 5_000_000, samples).astype(np.float64)
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            np.percentile(values, 95)

    waits = []
    thread = threading.Thread(target=worker)
    thread.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter_ns()
        time.sleep(0.0002)
        waits.append(time.perf_counter_ns() - t - 200_000)
    stop.set()
    thread.join()
    t = time.perf_counter_ns()
    np.percentile(values, 95)
    one = time.perf_counter_ns() - t
    waits.sort()
    return {
        "samples": samples,
        "percentile_ms": ms(one),
        "main_thread_wait_p99_ms": ms(waits[int(len(waits) * 0.99)]),
        "main_thread_wait_max_ms": ms(waits[-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--steps", type=int, default=100, help="seconds of load after the prefill")
    args = parser.parse_args()
    factory = event_loop_factory(True)
    results = {
        "static": static_costs(args.requests, args.rate, args.steps),
        "gil_hold": gil_hold(args.requests),
        "under_load": [],
    }
    for way in WAYS:
        with asyncio.Runner(loop_factory=factory) as runner:
            run = lag_under_load(args.requests, args.rate, args.seconds, way)
            results["under_load"].append(runner.run(run))
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    out = Path(__file__).parent / "results" / "abort_snapshot.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
