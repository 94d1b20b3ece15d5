"""The fault as one more scenario of the phase: inject at a set time, undo, measure, record.

``fault_scenario(...)`` returns the ``(iteration, options)`` pair ``certload.run_many`` takes. Its
single iteration starts at ``at_s`` (k6's ``startTime``), injects (off the event loop), holds the
fault for ``injector.hold_s``, undoes it, waits for the load to end, then records what the watch
saw and what the accounting found as ordinary metrics of the phase -- so the test's thresholds
judge them like any other (``recovery_time: max<30s``, ``lost_work: count==0``):

=========================  =======  ===========================================================
metric                     type     what
=========================  =======  ===========================================================
``fault_errors{kind:K}``   counter  load requests that failed from the fault until recovery, by kind
``time_to_first_success``  trend    fault -> first success of a request sent after the first
                                    failure that followed the fault (or after the fault)
``recovery_time``          trend    fault -> first of ``stable_windows`` healthy windows
                                    (not recorded when the load never recovered: ``no samples``)
``recovery_after_undo``    trend    fault taken away (``undo``) -> recovered: what a windowed
                                    fault (slow database, bad network) leaves behind
``fault_recovered``        rate     1 when the load recovered before it ended
``fault_inject_duration``  trend    how long ``inject`` took (a restart: until ready again)
``fault_window_duration``  trend    latency of load requests sent while the fault was in place,
                                    tagged with their ``step`` (did the fault really slow them?)
accounting counters        counter  each check's counts, always recorded (0 included)
=========================  =======  ===========================================================

Every fault metric is tagged ``fault:<kind>`` as well as with the fault scenario's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from time import monotonic_ns
from typing import Any, Protocol

from pytest_certload.engine.http import DEFAULT_TIMEOUT
from pytest_certload.faults.injector import Injector
from pytest_certload.faults.watch import NS, FaultWatch


class Accounting(Protocol):
    """A check of lost or duplicated work after the fault (blocking; runs off the event loop)."""

    def counts(self) -> dict[str, int]:
        """Counter name -> count (0 included), e.g. ``{"lost_work": 0, "duplicated_work": 0}``."""
        ...

    # optional: ``record(ctx, tags)``, called after ``counts`` on the event loop, records what is not
    # a plain count (trends such as faults/fleet_accounting.py's ``fleet_recovery_time``)


def fault_scenario(
    injector: Injector,
    watch: FaultWatch,
    *,
    at_s: float,
    phase_s: float,
    thresholds: Mapping[str, Sequence[Any]] | None = None,
    accounting: Sequence[Accounting] = (),
    settle_s: float = 30.0,
) -> tuple[Any, dict[str, Any]]:
    """``(iteration, options)`` for ``run_many``: the fault injected ``at_s`` into a ``phase_s`` phase.

    ``phase_s`` is the load scenarios' duration (the fault scenario's own ``duration`` is set to it
    too, so ``--certload-duration`` scales both alike); ``settle_s`` bounds what may run after the
    load ended (undo, accounting) before the engine cancels the iteration.
    """
    if not 0 <= at_s < phase_s:
        raise ValueError(f"fault at {at_s} s must fall inside the {phase_s} s phase")
    tags = {"fault": injector.kind}

    async def iteration(ctx: Any) -> None:
        load_end_ns = ctx.intended_start_ns + round((phase_s - at_s) * NS)
        ctx.counter("fault_errors", 0, tags)  # present even when nothing failed: count==0 can be judged
        fault_ns = monotonic_ns()
        try:
            await asyncio.to_thread(injector.inject)
            ctx.trend("fault_inject_duration", monotonic_ns() - fault_ns, tags)
            if injector.hold_s:
                await asyncio.sleep(injector.hold_s)
        finally:
            await asyncio.to_thread(injector.undo)
        undone_ns = monotonic_ns()
        wait = (load_end_ns - monotonic_ns()) / NS
        if wait > 0:
            await asyncio.sleep(wait)  # the load's own schedule: the phase is this long by design
        end_ns = max(load_end_ns, fault_ns)
        recovery = record_recovery(ctx, watch, fault_ns, end_ns, tags)
        if recovery is not None:  # how long the load took to recover once the fault was taken away
            ctx.trend("recovery_after_undo", max(0, fault_ns + round(recovery * NS) - undone_ns), tags)
        for o in watch.sent_between(fault_ns, undone_ns):
            ctx.trend("fault_window_duration", o.end_ns - o.start_ns, {**tags, "step": o.step or "none"})
        for check in accounting:
            for name, n in (await asyncio.to_thread(check.counts)).items():
                ctx.counter(name, n, tags)
            extra = getattr(check, "record", None)  # optional: trends and tagged counters of the check
            if extra is not None:
                extra(ctx, tags)

    options: dict[str, Any] = {
        "executor": "constant-vus",
        "vus": 1,
        "duration": f"{phase_s}s",
        "start_time": f"{at_s}s",
        "max_iterations": 1,
        "graceful_stop": f"{settle_s + injector.hold_s + (watch.request_timeout or DEFAULT_TIMEOUT)}s",
    }
    if thresholds:
        options["thresholds"] = dict(thresholds)
    return iteration, options


def record_recovery(
    ctx: Any, watch: FaultWatch, fault_ns: int, end_ns: int, tags: dict[str, str]
) -> float | None:
    """The watch's figures for one fault, as metrics of the fault scenario; the recovery time."""
    recovery = watch.recovery_time(fault_ns, end_ns)
    ctx.rate("fault_recovered", recovery is not None, tags)
    if recovery is not None:
        ctx.trend("recovery_time", round(recovery * NS), tags)
    first = watch.first_success_after(fault_ns)
    if first is not None:
        ctx.trend("time_to_first_success", round(first * NS), tags)
    until = fault_ns + round(recovery * NS) if recovery is not None else end_ns
    for kind, n in watch.errors_by_kind(fault_ns, until).items():
        ctx.counter("fault_errors", n, {**tags, "kind": kind})
    return recovery


def fault_failure(samples: Any, name: str = "fault") -> str | None:
    """Why the fault scenario itself failed (inject or undo raised, accounting failed), else None.

    The engine counts an iteration's exception instead of raising it; without this a failed
    injection would only show as thresholds with "no samples".
    """
    meta = samples.meta.get("scenarios", {}).get(name, {})
    errors = meta.get("iteration_error_samples") or []
    if meta.get("completed_iterations") == 1 and not errors:
        return None
    if errors:
        return f"the fault scenario {name!r} failed:\n" + "\n".join(errors)
    return f"the fault scenario {name!r} did not complete: {meta or 'it never ran'}"
