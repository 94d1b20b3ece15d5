"""Is the load generator itself the bottleneck? Event-loop lag and process CPU during a phase.

A ticker asks the loop to wake it every 10 ms and records how late it woke (oversleep). Timers
here have ~1 ms granularity and a 2-vCPU VM adds jitter: on an idle generator we measured lag
p50 0.1-0.7 ms, p99 1.2-3.8 ms, max ~5 ms. Process CPU is ``time.process_time()`` over wall time.
A stall longer than a tick also counts the ticks it swallowed (a 600 ms stall is 60 samples,
600, 590, ... 10 ms, as HdrHistogram's expected-interval correction): one sample per stall let a
loop that stopped for 0.6 s every few seconds read "lag p99 4 ms" (h9). Garbage-collector pauses
are timed too (``gc_pause_*``): the usual cause of such stalls in a large phase (gc_pauses.py).
``runq_wait_fraction`` is the share of the phase the loop thread was ready to run but waited for a
CPU (Linux /proc schedstat): the other cause, a machine oversubscribed by other work. h9 measured
both on the 2-vCPU dev VM: 10,000 agents, stalls of 100-270 ms = 15-75 ms of our CPU + the rest
waiting for a CPU while other sessions' tests ran (load average 4-5).

Saturation bounds (the glue turns ``saturated`` into a test error, because the numbers of such a
phase describe the generator, not the server):

- lag p99 > 10 ms: well above the idle jitter above (so a healthy generator never trips it), and
  large against the latencies the scenarios measure (certctl's fast endpoints answer in 1-5 ms):
  at that point one request in a hundred carries 10 ms of *our* delay.
- client_queue_time p99 > 20 ms: how long requests waited for the generator itself (an open-model
  iteration's late start plus its TLS handshake's wait for a pool thread and for the loop:
  engine/tls.py). Two waits, each of the lag's order, so twice its bound. Measured with 4 aligned
  new-connection scenarios (100 handshakes/s against nginx on the same 2-vCPU VM): p99 3.3-7.4 ms
  on the quiet VM; 10-40 ms, once 155 ms, when other work oversubscribed it (load 5-9), when the
  numbers describe the machine more than the server.
- CPU > 85 % of one core: the engine runs in one thread; a loop that busy queues work
  non-linearly (an M/M/1 queue at 85 % load waits ~5.7x its service time), and on a 2-core
  machine the server under test is left little more than one core.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from time import monotonic_ns

import numpy as np

TICK_SECONDS = 0.010
MAX_LAG_P99_MS = 10.0
MAX_CPU_FRACTION = 0.85
MAX_QUEUE_P99_MS = 20.0
_TICK_NS = int(TICK_SECONDS * 1e9)
#: a saturated phase whose loop thread waited this share of its time for a CPU says so in its reason
RUNQ_WAIT_NOTE = 0.05


@dataclass(frozen=True)
class GeneratorHealth:
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_samples: int
    cpu_fraction: float  # process CPU seconds / wall seconds (1.0 = one core busy)
    wall_seconds: float
    saturated: bool
    reason: str  # '' when not saturated
    queue_p50_ms: float = 0.0  # client_queue_time over every request of the phase
    queue_p99_ms: float = 0.0
    queue_samples: int = 0
    gc_pause_max_ms: float = 0.0  # the longest garbage-collector pause of the phase
    gc_pause_total_ms: float = 0.0
    gc_collections: int = 0
    runq_wait_fraction: float = 0.0  # the loop thread waiting for a CPU / wall time (0: not measured)

    def to_dict(self) -> dict:
        return asdict(self)


class HealthMonitor:
    """Samples event-loop lag and process CPU between ``start()`` and ``stop()``."""

    def __init__(
        self,
        max_lag_p99_ms: float = MAX_LAG_P99_MS,
        max_cpu_fraction: float = MAX_CPU_FRACTION,
        max_queue_p99_ms: float = MAX_QUEUE_P99_MS,
    ) -> None:
        self.max_lag_p99_ms = max_lag_p99_ms
        self.max_queue_p99_ms = max_queue_p99_ms
        self.max_cpu_fraction = max_cpu_fraction
        self.lags = array("q")
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0
        self._cpu0 = self._wall0 = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gc_pauses = array("q")
        self._gc_began = 0
        self._schedstat = ""
        self._runq0 = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        self._schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"  # this (the loop's) thread
        self._runq0 = _runq_wait_ns(self._schedstat)
        gc.callbacks.append(self._on_gc)
        self._arm()

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_began = monotonic_ns()
        elif self._gc_began:
            self.gc_pauses.append(monotonic_ns() - self._gc_began)

    def _arm(self) -> None:
        self._due = monotonic_ns() + int(TICK_SECONDS * 1e9)
        self._handle = self._loop.call_later(TICK_SECONDS, self._tick)  # type: ignore[union-attr]

    def _tick(self) -> None:
        # a timer that fires early (libuv rounds to ms) is no lag
        lag = max(0, monotonic_ns() - self._due)
        self.lags.append(lag)
        while lag > _TICK_NS:  # the ticks a stall swallowed: each would have been late too
            lag -= _TICK_NS
            self.lags.append(lag)
        self._arm()

    def stop(self, queue: Sequence[array] = ()) -> GeneratorHealth:
        """The phase's health; ``queue``: the client_queue_time arrays (int ns) of its requests."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        wall = max(time.monotonic() - self._wall0, 1e-9)
        cpu = (time.process_time() - self._cpu0) / wall
        runq = max(_runq_wait_ns(self._schedstat) - self._runq0, 0) / 1e9 / wall if self._runq0 >= 0 else 0.0
        if self.lags:
            lags = np.frombuffer(self.lags, dtype=np.int64) / 1e6
            p50, p99 = (float(x) for x in np.percentile(lags, [50, 99]))
            worst = float(lags.max())
        else:
            p50 = p99 = worst = 0.0
        parts = [np.frombuffer(a, dtype=np.int64) for a in queue if len(a)]
        q50 = q99 = 0.0
        queued = sum(len(a) for a in parts)
        if queued:
            q50, q99 = (float(x) for x in np.percentile(np.concatenate(parts) / 1e6, [50, 99]))
        reasons = []
        if p99 > self.max_lag_p99_ms:
            reasons.append(f"event-loop lag p99 {p99:.1f} ms > {self.max_lag_p99_ms:g} ms")
        if q99 > self.max_queue_p99_ms:
            reasons.append(f"client_queue_time p99 {q99:.1f} ms > {self.max_queue_p99_ms:g} ms")
        if cpu > self.max_cpu_fraction:
            reasons.append(f"generator CPU {cpu:.0%} of a core > {self.max_cpu_fraction:.0%}")
        if reasons and runq >= RUNQ_WAIT_NOTE:
            reasons.append(
                f"the loop thread waited for a CPU {runq:.0%} of the phase: machine oversubscribed"
            )
        return GeneratorHealth(
            lag_p50_ms=p50,
            lag_p99_ms=p99,
            lag_max_ms=worst,
            lag_samples=len(self.lags),
            cpu_fraction=cpu,
            wall_seconds=wall,
            saturated=bool(reasons),
            reason="; ".join(reasons),
            queue_p50_ms=q50,
            queue_p99_ms=q99,
            queue_samples=queued,
            gc_pause_max_ms=max(self.gc_pauses, default=0) / 1e6,
            gc_pause_total_ms=sum(self.gc_pauses) / 1e6,
            gc_collections=len(self.gc_pauses),
            runq_wait_fraction=runq,
        )


def _runq_wait_ns(path: str) -> int:
    """Time the thread spent ready but waiting for a CPU (schedstat's 2nd field); -1 if unknown."""
    try:
        with open(path) as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return -1
