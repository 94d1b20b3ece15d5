"""Closed model: constant-vus. Each VU runs iterations back to back until the duration ends.

No intended start exists in a closed model: each iteration starts when the previous one ends,
so ``http_req_duration`` equals the service time (and, as in k6, a server stall shows up as
fewer requests rather than as a long tail: coordinated omission is inherent to the model).
"""

from __future__ import annotations

import asyncio
from time import monotonic_ns

from pytest_certload.engine.executors.base import graceful_stop
from pytest_certload.engine.scenario import ScenarioRuntime


class ConstantVusExecutor:
    def __init__(self, runtime: ScenarioRuntime) -> None:
        self.runtime = runtime
        spec = runtime.spec
        # an xdist share runs its part of the VUs (worker i of n gets vus//n, plus one while i < vus%n)
        self.vus = spec.vus // spec.share_count + (1 if spec.share_index < spec.vus % spec.share_count else 0)
        self._next_iteration = 0
        self._limit = spec.max_iterations
        self._share_index, self._share_count = spec.share_index, spec.share_count
        self._end_ns = 0
        self._stopped = False
        self._stop_requested: asyncio.Future | None = None

    async def run(self, t0_ns: int) -> None:
        spec = self.runtime.spec
        stop = self._stop_requested = asyncio.get_running_loop().create_future()
        start = t0_ns + round(spec.start_offset * 1e9)
        self._end_ns = start + round(spec.duration * 1e9)
        delay = start - monotonic_ns()
        if delay > 0 and not self._stopped:
            await asyncio.wait({stop}, timeout=delay / 1e9)
        if self._stopped:
            return
        tasks = {
            asyncio.create_task(self._vu(spec.share_index + i * spec.share_count + 1))
            for i in range(self.vus)
        }
        remaining = (self._end_ns - monotonic_ns()) / 1e9
        if remaining > 0:
            vus_done = asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.wait({vus_done, stop}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        await graceful_stop(tasks, spec.graceful_stop)

    def stop(self) -> None:
        """No more iterations (abortOnFail); ``run`` then gives in-flight ones the graceful stop."""
        self._stopped = True
        self._end_ns = 0  # each VU checks it before starting its next iteration
        if self._stop_requested is not None and not self._stop_requested.done():
            self._stop_requested.set_result(None)

    async def _vu(self, vu: int) -> None:
        rt = self.runtime
        while monotonic_ns() < self._end_ns and self._next_iteration < self._limit:
            # scenario-wide numbers, unique across xdist shares (worker i of n: i, i+n, i+2n, ...)
            number = self._next_iteration * self._share_count + self._share_index
            self._next_iteration += 1
            errors = rt.errors
            await rt.run_iteration(vu, number, monotonic_ns(), False)
            if rt.errors != errors:
                await asyncio.sleep(0)  # a failing iteration may not suspend; let the loop breathe

    def meta(self) -> dict:
        spec = self.runtime.spec
        rt = self.runtime
        return {
            "executor": spec.executor,
            "share": [spec.share_index, spec.share_count],
            "schedule_seconds": spec.duration,
            "vus": self.vus,
            "target_rate": None,  # a closed model has no target rate
            "achieved_rate": rt.started / spec.duration if spec.duration else 0.0,
            "dropped_iterations": 0,
        }
