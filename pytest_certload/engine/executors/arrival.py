"""Open model: constant-arrival-rate and ramping-arrival-rate (k6's semantics, wrk2's clock).

Each arrival has an intended start from the schedule. A timer callback (no coroutine per tick)
starts every arrival that is due; when ``max_vus`` iterations are already in flight the arrival
is dropped and counted (``dropped_iterations``, as k6). An arrival that starts late is counted in
``late_starts`` and its lateness stays inside the first request's ``http_req_duration``.

Waking up on time without burning CPU: an arrival never starts early. libuv (uvloop) rounds a
timer to whole milliseconds against a cached clock, so a sub-millisecond timer fires at once and
re-arming it spins the loop until the arrival is due; measured here, that spin cost 44 % of a core
at 2,000 arrivals/s against 13 % without it. So loop timers only bring us to within ~2 ms of the
next arrival (rounded *up* to whole ms: no spin), a timerfd (engine/waker.py) covers the rest
with sub-ms precision, and every iteration that finishes also starts the arrivals already due -
the loop is awake then anyway, so under load arrivals start on time at no extra cost.
"""

from __future__ import annotations

import asyncio
import math
from time import monotonic_ns

from pytest_certload.engine.executors.base import graceful_stop
from pytest_certload.engine.scenario import ScenarioRuntime
from pytest_certload.engine.schedule import arrival_offsets_ns
from pytest_certload.engine.waker import TimerFdWaker, make_waker

# Within this much of the next arrival, the timerfd takes over from the loop's ms timers.
_PRECISE_WINDOW_NS = 2_000_000
_TIMER_LEAD_NS = 1_000_000  # loop timers aim this much early (they may fire up to ~1 ms early)
PRECISE_WAKEUPS = True  # False: loop timers only (whole ms, rounded up)
# Each timerfd wake-up is a loop turn of its own, and on this VM it cost ~50 us of CPU (5,000
# arrivals/s: 49 % of a core with a wake-up per arrival, 24 % with ms timers). Spacing wake-ups at
# least 0.5 ms apart caps them at 2,000/s: below 2,000 arrivals/s every arrival gets its own
# (lag ~0.1 ms), above it several share one and start at most 0.5 ms late.
_MIN_WAKE_SPACING_NS = 500_000


class ArrivalRateExecutor:
    def __init__(self, runtime: ScenarioRuntime) -> None:
        self.runtime = runtime
        spec = runtime.spec
        self._arrivals = arrival_offsets_ns(spec)
        self._next: tuple[int, int] | None = None
        self._free_vus = list(range(spec.pre_allocated_vus, 0, -1))  # pop() hands out VU 1 first
        self._allocated = spec.pre_allocated_vus
        self._max_vus = spec.max_vus
        self._inflight: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future | None = None
        self._handle: asyncio.Handle | None = None
        self._waker: TimerFdWaker | None = None
        self._last_tick_ns = 0
        self._t0 = 0
        self._stopped = False
        self.scheduled = 0
        self.dropped = 0
        self.max_inflight = 0

    async def run(self, t0_ns: int) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._t0 = t0_ns
        self._next = None if self._stopped else next(self._arrivals, None)
        self._waker = make_waker(loop, self._tick) if PRECISE_WAKEUPS else None
        self._arm()
        try:
            await self._done
        finally:
            self._next = None  # nothing more starts, even if we were cancelled
            if self._handle is not None:
                self._handle.cancel()
            if self._waker is not None:
                self._waker.close()
        await graceful_stop(self._inflight, self.runtime.spec.graceful_stop)

    def stop(self) -> None:
        """No more arrivals (abortOnFail); ``run`` then gives in-flight ones the graceful stop."""
        self._stopped = True
        self._next = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        nxt = self._next
        if nxt is None:
            if not self._done.done():  # type: ignore[union-attr]
                self._done.set_result(None)  # type: ignore[union-attr]
            return
        loop = self._loop
        due = self._t0 + nxt[1]
        delay = due - monotonic_ns()
        if delay <= 0:
            self._handle = loop.call_soon(self._tick)  # type: ignore[union-attr]
        elif self._waker is None:  # no timerfd: whole-ms loop timers, rounded up so they never spin
            self._handle = loop.call_later(math.ceil(delay / 1e6) / 1e3, self._tick)  # type: ignore[union-attr]
        elif delay <= _PRECISE_WINDOW_NS:
            self._waker.wake_at(max(due, self._last_tick_ns + _MIN_WAKE_SPACING_NS))
        else:
            lead_ms = math.ceil((delay - _TIMER_LEAD_NS) / 1e6)
            self._handle = loop.call_later(lead_ms / 1e3, self._tick)  # type: ignore[union-attr]

    def _poll(self) -> None:
        """Start arrivals that are already due (called whenever an iteration ends)."""
        nxt = self._next
        if nxt is not None and self._t0 + nxt[1] <= monotonic_ns():
            self._tick()

    def _tick(self) -> None:
        now = self._last_tick_ns = monotonic_ns()
        t0 = self._t0
        arrivals = self._arrivals
        nxt = self._next
        while nxt is not None and t0 + nxt[1] <= now:
            self._launch(nxt[0], t0 + nxt[1])
            nxt = next(arrivals, None)
        self._next = nxt
        self._arm()

    def _launch(self, number: int, intended_ns: int) -> None:
        self.scheduled += 1
        if self._free_vus:
            vu = self._free_vus.pop()
        elif self._allocated < self._max_vus:
            self._allocated += 1
            vu = self._allocated
        else:
            self.dropped += 1
            return
        task = self._loop.create_task(self._iteration(vu, number, intended_ns))  # type: ignore[union-attr]
        inflight = self._inflight
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        if len(inflight) > self.max_inflight:
            self.max_inflight = len(inflight)

    async def _iteration(self, vu: int, number: int, intended_ns: int) -> None:
        try:
            await self.runtime.run_iteration(vu, number, intended_ns, True)
        finally:
            self._free_vus.append(vu)
            self._poll()

    def meta(self) -> dict:
        spec = self.runtime.spec
        rt = self.runtime
        duration = spec.total_duration
        span = (rt.last_start_ns - rt.first_start_ns) / 1e9
        return {
            "executor": spec.executor,
            "share": [spec.share_index, spec.share_count],
            "schedule_seconds": duration,
            "scheduled_arrivals": self.scheduled,
            "dropped_iterations": self.dropped,
            "target_rate": self.scheduled / duration if duration else 0.0,
            # started iterations per second of schedule, and the same measured between the first and
            # last actual starts (what a wall clock sees)
            "achieved_rate": rt.started / duration if duration else 0.0,
            "achieved_rate_wall": (rt.started - 1) / span if rt.started > 1 and span > 0 else 0.0,
            "vus_allocated": self._allocated,
            "max_vus": self._max_vus,
            "max_in_flight": self.max_inflight,
        }
