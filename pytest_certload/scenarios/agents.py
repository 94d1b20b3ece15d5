"""The agent scenarios' helper iterations: the connection probe and the renewal-drain driver.

Both run beside an ``agent-fleet`` scenario in one phase (``certload.run_many``), as one VU with
one iteration (``constant-vus``, ``max_iterations=1``), so what they find is a metric of the phase:

- :func:`connection_probe` counts established connections to certctl's port from this process and
  from certctl's side (agents/connections.py) a few times during the phase and records the highest
  as ``connections_held{side:generator|certctl}``;
- :func:`renewal_drain` bulk-renews explicit ``certificate_ids``, waits (bounded by its budget)
  until the fleet renewed them all (agents/drain.py), then reads certctl's jobs table for those
  certificates and records ``drain_jobs{job_type,job_status}``, ``drain_jobs_left`` (not
  ``Completed``), ``drain_left`` (not renewed as the agents saw it),
  ``drain_certificates_per_s`` (and ``_per_min``, whole, for thresholds); then it ends the fleet.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from time import monotonic_ns

from pytest_certload.agents import connections
from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.scenarios.common import bulk_renew_call, record_bulk_counts
from pytest_certload.stack.model import Stack

#: the drain reads the jobs table this long before its budget ends (at most this share of the budget)
JOBS_READ_MARGIN_S = 3.0
JOBS_READ_MARGIN_SHARE = 0.2


@dataclass
class ProbeReadings:
    """What the probe saw: the highest counts and how certctl's side was counted (or why not)."""

    generator: int = 0
    certctl: int | None = None
    how: str = ""
    samples: list[tuple[float, int, int | None]] = field(default_factory=list)


def connection_probe(stack: Stack, duration_s: float, samples: int = 6, first_after_s: float = 0.0):
    """An iteration sampling established connections ``samples`` times over ``duration_s``."""
    port = connections.certctl_port(stack)
    readings = ProbeReadings()

    async def iteration(ctx) -> None:
        began = time.monotonic()
        first = min(first_after_s, max(duration_s - 1.0, 0.0))
        every = max((duration_s - first - 0.5) / max(samples - 1, 1), 0.5)
        at = first
        while at <= duration_s - 0.5:
            delay = began + at - time.monotonic()
            if delay > 0:
                await ctx.sleep(delay)
            gen = await asyncio.to_thread(connections.generator_side, port)
            srv, how = await asyncio.to_thread(connections.server_side, stack)
            readings.samples.append((round(time.monotonic() - began, 2), gen, srv))
            readings.generator = max(readings.generator, gen)
            if srv is not None:
                readings.certctl = max(readings.certctl or 0, srv)
            readings.how = how
            at += every
        ctx.counter("connections_held", readings.generator, tags={"side": "generator"})
        if readings.certctl is not None:
            ctx.counter("connections_held", readings.certctl, tags={"side": "certctl"})

    return iteration, readings


def read_drain_jobs(stack: Stack, certificate_ids: list[str], since_epoch: float) -> Counter[tuple[str, str]]:
    """Jobs of ``certificate_ids`` created since ``since_epoch``, counted by (type, status)."""
    from pytest_certload.stack.secret import connect_pg

    if stack.dsn is None:
        raise RuntimeError("the drain reads certctl's jobs table: the stack has no database DSN")
    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT type, status, count(*) FROM jobs WHERE certificate_id = ANY(%s)"
            " AND created_at >= to_timestamp(%s) GROUP BY type, status",
            (list(certificate_ids), since_epoch),
        ).fetchall()
    return Counter({(str(t), str(s)): int(n) for t, s, n in rows})


def read_failed_job_errors(
    stack: Stack, certificate_ids: list[str], since_epoch: float, limit: int = 5
) -> list[tuple[str, str, int]]:
    """The commonest ``last_error`` texts of those jobs that ended ``Failed``: (type, error, count)."""
    from pytest_certload.stack.secret import connect_pg

    if stack.dsn is None:
        return []
    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT type, coalesce(last_error, ''), count(*) FROM jobs WHERE certificate_id = ANY(%s)"
            " AND created_at >= to_timestamp(%s) AND status = 'Failed'"
            " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT %s",
            (list(certificate_ids), since_epoch, limit),
        ).fetchall()
    return [(str(t), str(e), int(n)) for t, e, n in rows]


def agents_not_online(stack: Stack, agent_ids: list[str]) -> Counter[str]:
    """The fleet's agents by status, those not ``Online`` only (certctl's health sweep, finding 7)."""
    from pytest_certload.stack.secret import connect_pg

    if stack.dsn is None:
        return Counter()
    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM agents WHERE id = ANY(%s) AND status <> 'Online' GROUP BY status",
            (list(agent_ids),),
        ).fetchall()
    return Counter({str(s): int(n) for s, n in rows})


@dataclass
class DrainOutcome:
    """What the drain driver found, for the test's assertions and failure message."""

    bulk_status: int = 0
    bulk_counts: dict[str, int] = field(default_factory=dict)
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_errors: list[tuple[str, str, int]] = field(default_factory=list)  # (type, last_error, count)
    finished: bool = False
    seconds: float = 0.0

    @property
    def jobs_left(self) -> Counter[tuple[str, str]]:
        return Counter({k: n for k, n in self.jobs.items() if k[1] != "Completed"})


def renewal_drain(
    stack: Stack,
    fleet: AgentFleet,
    certificate_ids: list[str],
    budget_s: float,
    sidecar_bound: set[str] | None = None,
):
    """The driver iteration and the DrainOutcome it fills."""
    watch = fleet.watch_drain(certificate_ids, sidecar_bound)
    url, headers, body = bulk_renew_call(stack, certificate_ids)
    outcome = DrainOutcome()

    async def iteration(ctx) -> None:
        margin = min(JOBS_READ_MARGIN_S, JOBS_READ_MARGIN_SHARE * budget_s)
        deadline = monotonic_ns() + int((budget_s - margin) * 1e9)
        since = time.time() - 1.0
        try:
            # before the send: an agent may take a renewal's job before this answer is read, and the
            # watch counts only what it sees after it started
            watch.requested()
            resp = await ctx.request(
                "POST", url, headers=headers, body=body, tags={"step": "bulk_renew"}, timeout=120
            )
            outcome.bulk_status = resp.status
            if resp.status == 200:
                outcome.bulk_counts = record_bulk_counts(ctx, resp.body)
                left = (deadline - monotonic_ns()) / 1e9
                if left > 0:
                    try:
                        async with asyncio.timeout(left):
                            await watch.done.wait()
                    except TimeoutError:
                        pass
            outcome.finished = watch.done.is_set()
            outcome.seconds = (monotonic_ns() - (watch.requested_ns or monotonic_ns())) / 1e9
            ctx.counter("drain_requested", len(certificate_ids))
            ctx.counter("drain_left", watch.left)
            ctx.counter("drain_certificates_per_s", watch.throughput())
            # thresholds compare counters as whole numbers: the same throughput per minute for them
            ctx.counter("drain_certificates_per_min", round(watch.throughput() * 60))
            outcome.jobs = await asyncio.to_thread(read_drain_jobs, stack, list(certificate_ids), since)
            if any(status == "Failed" for _, status in outcome.jobs):
                outcome.failed_errors = await asyncio.to_thread(
                    read_failed_job_errors, stack, list(certificate_ids), since
                )
            for (job_type, status), n in outcome.jobs.items():
                ctx.counter("drain_jobs", n, tags={"job_type": job_type, "job_status": status})
            ctx.counter("drain_jobs_left", sum(outcome.jobs_left.values()))
        finally:
            fleet.finished.set()  # the drain is over (done or out of budget): the fleet stops

    return iteration, outcome
