"""abortOnFail while a phase runs: a snapshot of everything recorded so far, checked once a second.

The loop's part of a snapshot costs only what was recorded since the previous one: it copies the new
tail of each append-only ``array('q')`` (the samples are only ever touched on the loop). A worker
thread appends the tails to numpy mirrors (growing one is O(n), which is why it is not on the loop),
builds the PhaseSamples from read-only views of them and runs the check. A full copy on the loop
(``Recorder.samples()``) grows with the phase: at 300k requests (2.1 M samples) it held the loop for
10-17 ms on this VM, more than the late-start tolerance (benchmarks/bench_abort_snapshot.py).
Counts the engine keeps outside the Recorder until the phase ends (``http_reqs``,
``http_req_failed``, custom counters, ``iterations``, ...) come from ``ScenarioRecorder.pending``,
never flushed.

The check itself runs in that thread too. That keeps its Python work off the loop, but not all of
its cost: numpy's partition (percentiles) and concatenate hold the GIL for their whole call, so the
loop may wait for the longest single call, measured here at ~3 ms for a percentile over 300k
samples of one trend. Rate and counter thresholds cost microseconds. When the check names a
reason, every executor is stopped as at the end of its duration: no new iterations, in-flight
ones get their graceful-stop window.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from time import monotonic_ns, perf_counter_ns
from typing import Any

import numpy as np

from pytest_certload.engine.executors import Executor, iteration_counts
from pytest_certload.stats import PhaseSamples, Recorder, SeriesKey

AbortCheck = Callable[[PhaseSamples, float], "str | None"]

CHECK_INTERVAL_S = 1.0
_MIN_MIRROR = 1024


class _Mirror:
    """A numpy copy of one append-only trend array, grown by the tails the loop copied out."""

    __slots__ = ("buf", "n")

    def __init__(self) -> None:
        self.buf = np.empty(0, dtype=np.int64)
        self.n = 0

    def extend(self, tail: np.ndarray) -> None:
        n = self.n
        m = n + tail.size
        if m > self.buf.size:
            grown = np.empty(max(m + m // 2, _MIN_MIRROR), dtype=np.int64)
            grown[:n] = self.buf[:n]
            self.buf = grown  # views handed out earlier keep the old buffer
        self.buf[n:m] = tail
        self.n = m

    def view(self) -> np.ndarray:
        view = self.buf[: self.n]  # later tails go past n: this view never changes
        view.flags.writeable = False
        return view


class _Capture:
    """What the loop copied out for one snapshot: new trend tails and all counts (all small)."""

    __slots__ = ("counters", "meta", "rates", "tails")

    def __init__(self, tails: dict, rates: dict, counters: dict, meta: dict) -> None:
        self.tails, self.rates, self.counters, self.meta = tails, rates, counters, meta


def live_counts(
    recorder: Recorder, executors: Sequence, extra: Callable[[Any], dict] = iteration_counts
) -> tuple[dict, dict]:
    """Counters and rates as of now: what the Recorder holds (custom ``ctx.rate``/``ctx.check`` go
    there directly) plus what each scenario still buffers, with ``extra(executor)`` counts added."""
    rates = {k: (v[0], v[1]) for k, v in recorder.rates.items()}
    counters = dict(recorder.counters)
    for executor in executors:
        pending_counters, pending_rates = executor.runtime.recorder.pending(extra(executor))
        for k, n in pending_counters.items():
            counters[k] = counters.get(k, 0) + n
        for k, (trues, total) in pending_rates.items():
            t0, n0 = rates.get(k, (0, 0))
            rates[k] = (t0 + trues, n0 + total)
    return counters, rates


class PhaseSnapshot:
    """Mid-phase PhaseSamples of one phase's Recorder and executors.

    ``capture`` runs on the loop and copies only what is new since the previous capture; ``build``
    (any one thread at a time, e.g. the abort-check worker) appends that to the mirrors and makes
    the PhaseSamples, so the occasional O(n) growth of a mirror never holds the loop.
    """

    def __init__(self, recorder: Recorder, executors: Sequence[Executor]) -> None:
        self._recorder = recorder
        self._executors = executors
        self._taken: dict[SeriesKey, int] = {}
        self._mirrors: dict[SeriesKey, _Mirror] = {}

    def capture(self, meta: dict | None = None) -> _Capture:
        rec = self._recorder
        taken = self._taken
        tails = {}
        for key, values in rec.trends.items():
            n, m = taken.get(key, 0), len(values)
            if m > n or key not in taken:
                # the export of ``values`` ends with this block, before anything appends to it again;
                # were a view of it still alive, the context manager would raise here, not the hot path
                with memoryview(values) as whole:
                    tails[key] = np.frombuffer(whole, dtype=np.int64, count=m - n, offset=n * 8).copy()
                taken[key] = m
        counters, rates = live_counts(rec, self._executors)
        return _Capture(tails, rates, counters, dict(meta or {}))

    def build(self, capture: _Capture) -> PhaseSamples:
        mirrors = self._mirrors
        for key, tail in capture.tails.items():
            mirror = mirrors.get(key)
            if mirror is None:
                mirror = mirrors[key] = _Mirror()
            mirror.extend(tail)
        trends = {key: mirror.view() for key, mirror in mirrors.items()}
        return PhaseSamples(trends=trends, rates=capture.rates, counters=capture.counters, meta=capture.meta)

    def take(self, meta: dict | None = None) -> PhaseSamples:
        """``capture`` and ``build`` in one go (tests, benchmarks)."""
        return self.build(self.capture(meta))


class AbortWatch:
    """Calls ``check(snapshot, elapsed_s)`` about once a second from time zero; a non-empty answer
    stops every executor and becomes :attr:`reason`."""

    def __init__(
        self,
        check: AbortCheck,
        snapshot: PhaseSnapshot,
        executors: Sequence[Executor],
        t0_ns: int,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._check = check
        self._snapshot = snapshot
        self._executors = executors
        self._t0 = t0_ns
        self._interval_ns = round(interval_s * 1e9)
        self._pool: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self.reason: str | None = None
        self.error: str | None = None
        self.checks = 0
        self.snapshot_ns = array("q")  # loop time spent on each snapshot (the capture)
        self.evaluate_ns = array("q")  # worker-thread time: building the snapshot and checking it

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="certload-abort-check")
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        due = self._t0 + self._interval_ns
        while True:
            while (delay := due - monotonic_ns()) > 0:  # loop timers may fire up to 1 ms early
                await asyncio.sleep(math.ceil(delay / 1e6) / 1e3)
            elapsed_s = (monotonic_ns() - self._t0) / 1e9
            began = perf_counter_ns()
            capture = self._snapshot.capture({"elapsed_s": elapsed_s, "snapshot": True})
            self.snapshot_ns.append(perf_counter_ns() - began)
            try:
                reason = await loop.run_in_executor(self._pool, self._evaluate, capture, elapsed_s)
            except Exception as exc:  # a broken check must not take the load phase down with it
                self.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"abort check failed, abortOnFail is off for the rest of this phase: {self.error}",
                    RuntimeWarning,
                    stacklevel=1,
                )
                return
            self.checks += 1
            if reason:
                self.reason = str(reason)
                for executor in self._executors:
                    executor.stop()
                return
            due = max(due + self._interval_ns, monotonic_ns())

    def _evaluate(self, capture: _Capture, elapsed_s: float) -> str | None:
        began = perf_counter_ns()
        try:
            return self._check(self._snapshot.build(capture), elapsed_s)
        finally:
            self.evaluate_ns.append(perf_counter_ns() - began)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # we are being cancelled ourselves, not just the watch
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def meta(self) -> dict:
        def ms(samples: array, stat: str) -> float:
            return float(getattr(np.frombuffer(samples, dtype=np.int64), stat)() / 1e6) if samples else 0.0

        return {
            "checks": self.checks,
            "aborted": self.reason,
            "error": self.error,
            "snapshot_ms_max": ms(self.snapshot_ns, "max"),  # event-loop time
            "snapshot_ms_mean": ms(self.snapshot_ns, "mean"),
            "evaluate_ms_max": ms(self.evaluate_ns, "max"),  # worker-thread time
        }
