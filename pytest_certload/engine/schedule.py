"""Open-model schedules: the intended start time of every arrival, evenly spaced, never bunched.

Arrival ``k`` (0-based) is due when the cumulative target count reaches ``k``: at ``k / rate`` for a
constant rate, and at the solution of ``N(t) = k`` for a piecewise-linear ramp. The schedule is the
source of truth for latency (wrk2): a request's duration is measured from when it was *due*.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from pytest_certload.engine.spec import ExecutorSpec

NS = 1_000_000_000


def arrival_offsets_ns(spec: ExecutorSpec) -> Iterator[tuple[int, int]]:
    """``(global arrival index, offset from phase start in ns)`` for this process's share.

    Offsets include ``spec.start_offset``. Worker ``share_index`` of ``share_count`` yields arrivals
    ``share_index, share_index + share_count, ...``, so the workers' shares interleave into exactly
    the single-process schedule.
    """
    offset_ns = round(spec.start_offset * NS)
    step, first = spec.share_count, spec.share_index
    limit = spec.max_iterations * step
    for k, t in _global_arrivals(spec):
        if k >= limit:
            return
        if k % step == first:
            yield k, offset_ns + t


def target_arrivals(spec: ExecutorSpec) -> int:
    """How many arrivals the whole (unshared) schedule holds."""
    return sum(1 for _ in _global_arrivals(spec))


def _global_arrivals(spec: ExecutorSpec) -> Iterator[tuple[int, int]]:
    if spec.executor == "constant-arrival-rate":
        per_second = spec.rate / spec.time_unit
        count = math.floor(per_second * spec.duration + 1e-9)
        for k in range(count):
            yield k, round(k * NS / per_second)
        return
    yield from _ramp(spec)


def _ramp(spec: ExecutorSpec) -> Iterator[tuple[int, int]]:
    """Piecewise-linear rate: on a stage from r0 to r1 over D, N(t) = r0 t + (r1 - r0) t^2 / 2D."""
    k = 0
    stage_start = 0.0  # seconds since phase start
    done = 0.0  # arrivals due before this stage (fractional)
    r0 = spec.start_rate / spec.time_unit
    for stage in spec.stages:
        r1 = stage.target / spec.time_unit
        d = stage.duration
        in_stage = (r0 + r1) / 2 * d
        while k < done + in_stage - 1e-9:
            need = k - done  # arrivals into this stage
            t = _solve(r0, r1, d, need)
            yield k, round((stage_start + t) * NS)
            k += 1
        done += in_stage
        stage_start += d
        r0 = r1


def _solve(r0: float, r1: float, d: float, n: float) -> float:
    """Smallest t in [0, d] with r0 t + (r1 - r0) t^2 / (2 d) = n."""
    a = (r1 - r0) / (2 * d)
    if abs(a) < 1e-12:
        return n / r0 if r0 > 0 else 0.0
    disc = r0 * r0 + 4 * a * n
    root = math.sqrt(max(disc, 0.0))
    # numerically stable form of (-r0 + root) / (2a)
    t = 2 * n / (r0 + root) if r0 + root > 0 else (-r0 + root) / (2 * a)
    return min(max(t, 0.0), d)
