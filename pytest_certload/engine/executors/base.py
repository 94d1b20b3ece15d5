"""What every executor shares: the protocol the phase runner drives, and graceful stop."""

from __future__ import annotations

import asyncio
from typing import Protocol

from pytest_certload.engine.scenario import ScenarioRuntime

CANCEL_WAIT_SECONDS = 5.0


class Executor(Protocol):
    runtime: ScenarioRuntime

    async def run(self, t0_ns: int) -> None:
        """Run the schedule starting at monotonic ``t0_ns``, then stop gracefully."""

    def meta(self) -> dict:
        """Executor facts for the result meta (target/achieved rate, VUs, drops)."""

    def stop(self) -> None:
        """Start no more iterations now (abortOnFail), as at the end of the duration: ``run``
        returns after the in-flight ones got their graceful-stop window."""


def iteration_counts(executor: Executor) -> dict[str, int]:
    """The per-scenario counters the phase writes at its end (and mid-phase snapshots read)."""
    rt = executor.runtime
    return {
        "iterations": rt.completed,
        "dropped_iterations": executor.meta()["dropped_iterations"],
        "late_starts": rt.late,
        "interrupted_iterations": rt.interrupted,
    }


async def graceful_stop(tasks: set[asyncio.Task], seconds: float) -> int:
    """Give in-flight iterations ``seconds`` to finish (k6's gracefulStop), then cancel the rest.

    Returns how many were cancelled (each is counted as interrupted by the iteration runner).
    """
    if tasks:
        await asyncio.wait(set(tasks), timeout=seconds)
    left = [t for t in tasks if not t.done()]
    for task in left:
        task.cancel()
    if left:
        # bounded: an iteration that swallows its cancellation is abandoned (the loop closes it)
        await asyncio.wait(left, timeout=CANCEL_WAIT_SECONDS)
    return len(left)
