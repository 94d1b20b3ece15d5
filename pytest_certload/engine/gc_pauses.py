"""Keep CPython's cyclic garbage collector from stopping the event loop for seconds in a large phase.

Why: a fleet of N simulated agents holds N TLS + HTTP/2 connections, each a few hundred objects
the collector tracks (h2's state machines and settings, hpack tables, the SSL object, futures).
A full (generation-2) collection walks every one of them with the loop stopped. Measured (h9,
benchmarks/bench_agents.py shape, 10,000 agents on the 2-vCPU dev VM): full collections grew to
586 ms each as connections opened, 3.4 s in 13 pauses over 100 s; every tick due during a pause
started late, so ``client_queue_time`` p99 was 400 ms - 1.6 s while the loop's 10 ms lag probe
(one sample per pause) still read p99 4 ms and CPU was 34 % of a core.

What :class:`FrozenHeap` does while it is active: every ``FREEZE_EVERY_S`` it moves the objects the
collector tracks into the permanent generation (``gc.freeze()``: constant time, a list splice), so
automatic collections only walk objects younger than a second -- the connections, once open, are
never walked again. At the end the heap is unfrozen (the next full collection, after the phase's
timed work, sees everything again).

Cost: cyclic garbage that was younger than a second when a freeze came stays in memory until the
end (reference-counted garbage is freed at once as always; a connection closed during the phase is
typically such a cycle: protocol <-> transport). Memory per agent was the same with and without
(52.7 vs 53.9 KB at 10,000 agents). After the fleet, the first full collection walks everything
once: 1.1-2.1 s for the ~660,000 objects of 10,000 closed connections (measured); the caller may
run ``gc.collect()`` outside its timed window to take that pause at a time of its choosing.
"""

from __future__ import annotations

import asyncio
import gc

#: how often the tracked heap is frozen while a FrozenHeap is active (seconds)
FREEZE_EVERY_S = 1.0
#: False: leave the collector alone (for before/after comparisons, benchmarks' ``--no-freeze``)
ENABLED = True
_active = 0  # FrozenHeap instances active in this process (nested phases, several fleets)


class FrozenHeap:
    """``with FrozenHeap(loop): ...`` -- the heap frozen every second inside the block (see module doc)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every_s: float = FREEZE_EVERY_S) -> None:
        self._loop = loop
        self._every_s = every_s
        self._handle: asyncio.TimerHandle | None = None
        self.freezes = 0

    def __enter__(self) -> FrozenHeap:
        global _active
        if ENABLED:
            _active += 1
            self._freeze()
        return self

    def _freeze(self) -> None:
        gc.freeze()
        self.freezes += 1
        self._handle = self._loop.call_later(self._every_s, self._freeze)

    def __exit__(self, *exc: object) -> None:
        global _active
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        _active -= 1
        if _active == 0:
            gc.unfreeze()  # the frozen objects join the oldest generation: collected as usual from now
