"""N simulated certctl agents as one scenario's iteration, run by executor="agent-fleet".

The executor decides when each agent acts (Go's tickers, engine/agent_timing.py) and which
connection it uses (its own); this module decides what the agent does on each tick, as
cmd/agent/main.go and poll.go do: a heartbeat tick sends one heartbeat; a poll tick polls for work
and runs every item in order, inline (an ``AwaitingCSR`` job -> csr_job.py; a ``Deployment`` ->
deploy_job.py; anything else is ignored). A failed heartbeat or poll marks the tick failed, so the
executor backs the agent off as the real one does.

Use::

    fleet = AgentFleet(stack, agent_ids)
    certload.run(fleet, name="agent_fleet")   # marker: executor="agent-fleet", agents=N, duration=...

``fleet.finished`` (an asyncio.Event) ends the fleet early when set; ``fleet.drain`` (a DrainWatch)
follows a bulk renewal to its end.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pytest_certload.agents.csr_job import run_csr_job
from pytest_certload.agents.deploy_job import VERIFY_TIMEOUT_S, run_deploy_job
from pytest_certload.agents.drain import DrainWatch
from pytest_certload.agents.model import AgentIdentity, AgentState
from pytest_certload.agents.protocol import AgentProtocol
from pytest_certload.engine.agent_timing import current_tick
from pytest_certload.stack.model import Stack


class AgentFleet:
    """The iteration of an agent-fleet scenario: one agent's tick, as the real agent serves it."""

    def __init__(
        self,
        stack: Stack,
        agent_ids: list[str],
        *,
        http_version: str = "2",
        verify_timeout: float = VERIFY_TIMEOUT_S,
        report_verification: bool = True,
        sidecar_targets: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        if not agent_ids:
            raise ValueError("an agent fleet needs agent ids: seed an agent fleet first")
        self.agents = [AgentState(AgentIdentity.for_index(a, i)) for i, a in enumerate(agent_ids)]
        self.proto = AgentProtocol(stack, http_version)
        self.verify_timeout = verify_timeout
        self.report_verification = report_verification
        self.sidecar_targets = frozenset(sidecar_targets)  # the only targets whose files are written
        self.finished = asyncio.Event()
        self.drain: DrainWatch | None = None
        self.jobs: Counter[tuple[str, str]] = Counter()  # (job type, outcome) -> count, for the meta
        self.served: Counter[bool] = Counter()

    def watch_drain(self, certificate_ids: list[str], sidecar_bound: set[str] | None = None) -> DrainWatch:
        self.drain = DrainWatch(certificate_ids, sidecar_bound or set())
        return self.drain

    async def __call__(self, ctx) -> None:
        tick = current_tick()
        if tick.agent >= len(self.agents):
            raise IndexError(
                f"agent {tick.agent + 1} of the fleet has no id: {len(self.agents)} agent ids for a larger "
                "agents= option; seed more agents or lower agents="
            )
        agent = self.agents[tick.agent]
        if tick.kind == "heartbeat":
            resp = await self.proto.heartbeat(ctx, agent)
            tick.failed = resp.status != 200
            return
        resp, items = await self.proto.poll(ctx, agent)
        if items is None:
            tick.failed = True
            return
        for item in items:
            if item.status == "AwaitingCSR":
                outcome = await run_csr_job(ctx, self.proto, agent, item)
                if outcome == "submitted" and self.drain is not None:
                    self.drain.csr_accepted(ctx, item.certificate_id)
                self._count(ctx, "csr", outcome)
            elif item.type == "Deployment":
                outcome, served = await run_deploy_job(
                    ctx,
                    self.proto,
                    agent,
                    item,
                    verify_timeout=self.verify_timeout,
                    report_verification=self.report_verification,
                    sidecar_targets=self.sidecar_targets,
                )
                if served is not None:
                    self.served[served] += 1
                if outcome == "completed" and self.drain is not None:
                    self.drain.deployed(ctx, item.certificate_id, served)
                self._count(ctx, "deployment", outcome)
            else:
                self._count(ctx, item.type or "unknown", "ignored")

    def _count(self, ctx, job_type: str, outcome: str) -> None:
        self.jobs[(job_type, outcome)] += 1
        ctx.counter("agent_jobs", tags={"job_type": job_type, "outcome": outcome})

    def to_meta(self) -> dict:
        """What the fleet did, for the phase's meta (summary): job outcomes, sidecar checks, the drain."""
        return {
            "agent_ids": len(self.agents),
            "jobs": {f"{t}:{o}": n for (t, o), n in sorted(self.jobs.items())},
            "served": {"yes": self.served[True], "no": self.served[False]},
            "drain": self.drain.to_meta() if self.drain is not None else None,
        }
