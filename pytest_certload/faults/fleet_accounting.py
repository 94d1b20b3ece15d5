"""Lost and duplicated work of an agent fleet after a fault: jobs, issuance, agents (issue 18 §1).

:class:`FleetLedger` listens to the fleet's requests (a ``FaultWatch`` listener: every agent request
passes it) and learns, per agent, when it last succeeded and whether it succeeded again after the
fault; which job ids the agents received in a work poll; and which polls got no answer after being
sent (they may have claimed deployments certctl never delivered). :func:`bulk_renewal` is the
driver that bulk-renews the certificates (explicit ``certificate_ids``) before the fault and tells
the ledger when. After the phase, :meth:`FleetLedger.counts` reads certctl's tables:

* ``lost_jobs``: jobs of this renewal (created since the bulk-renew, for its certificates) left in a
  state certctl never offers again, plus renewals Completed without their Deployment jobs -- the
  fault's doing; ``lost_jobs_unexplained``: those no known mechanism explains (faults/fleet_losses.py
  names the rest: certctl's non-transactional CSR completion, an agent's report the crash refused);
* ``stuck_jobs_known_defect``: ``Deployment`` jobs left ``Running`` that no agent ever received and
  whose agent sent no poll left unanswered after the job was created: certctl's job processor
  claimed them, no fault needed (scenarios/agent_defects.py ``processor-claims-agent-deployments``;
  it also runs once at boot, so a restart claims every Pending deployment at once);
* ``jobs_unfinished``: ``Pending`` / ``AwaitingCSR`` jobs certctl still offers: the phase ended first;
* ``duplicate_issuance``: certificates that got more than one new ``certificate_versions`` row;
* ``renewals_issued`` / ``renewals_not_issued``: certificates with / without a new version;
* ``agents_offline``: the fleet's agents not ``Online`` at the end;
* ``agents_reconnected`` / ``agents_not_reconnected``: agents with / without a successful request
  sent after the fault.

:meth:`FleetLedger.record` adds what is not a count (``faults/driver.py`` calls it when present):
``fleet_recovery_time`` (fault -> the last agent's first success; not recorded when an agent never
came back, so ``max<30s`` fails with "no samples"), ``agent_reconnect_time`` (each agent's), and
``jobs_left{job_type,job_status,cause,why}`` (cause ``lost``, ``known_defect`` or ``unfinished``;
``why`` the mechanism's or defect's key).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import Any

from pytest_certload.faults.fleet_losses import Evidence, classify, explain
from pytest_certload.faults.injector import Injector
from pytest_certload.scenarios.common import bulk_renew_call, record_bulk_counts
from pytest_certload.stack.model import Stack
from pytest_certload.stack.secret import connect_pg

AGENT_PATH = re.compile(r"/api/v1/agents/([^/?]+)/([^?]*)")
JOBS = (
    "SELECT id, type, status, agent_id, certificate_id, extract(epoch FROM created_at)::float8"
    " FROM jobs WHERE certificate_id = ANY(%s)"
    " AND created_at >= to_timestamp(%s)"
)
VERSIONS = (
    "SELECT certificate_id, count(*) FROM certificate_versions WHERE certificate_id = ANY(%s)"
    " AND created_at >= to_timestamp(%s) GROUP BY 1"
)
OFFLINE = "SELECT status, count(*) FROM agents WHERE id = ANY(%s) AND status <> 'Online' GROUP BY 1"
NS = 1_000_000_000
#: how long the read waits for agent ticks still running when the load ended (their graceful stop)
TICKS_DRAIN_S = 15.0


@dataclass
class FleetFindings:
    """What :meth:`FleetLedger.counts` found, kept for the figures and the failure message."""

    jobs_left: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # type, status, cause, why
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, status), all of them
    never_deployed: int = 0  # renewals Completed without a Deployment job (csr-completion-not-atomic)
    versions: dict[str, int] = field(default_factory=dict)  # certificate id -> new versions
    offline: Counter[str] = field(default_factory=Counter)  # status -> agents
    reconnect_s: dict[str, float] = field(default_factory=dict)  # agent -> fault -> first success

    def by_cause(self) -> Counter[str]:
        out = Counter({"lost": self.never_deployed})
        for (_, _, cause, _), n in self.jobs_left.items():
            out[cause] += n
        return out

    def explanations(self) -> list[str]:
        """One line per kind of job left, with the defect or mechanism that explains it."""
        lines = [
            f"{n} x {job_type} {status}: {explain(cause, why, job_type, status)}"
            for (job_type, status, cause, why), n in sorted(self.jobs_left.items())
        ]
        if self.never_deployed:
            lines.append(
                f"{self.never_deployed} x Renewal Completed without a Deployment job: "
                + explain("lost", "csr-completion-not-atomic", "Renewal", "Completed")
            )
        return lines


class FleetLedger:
    """The fleet's work around one fault; an ``Accounting`` for ``fault_scenario``."""

    def __init__(
        self, stack: Stack, agent_ids: list[str], certificate_ids: list[str], injector: Injector
    ) -> None:
        if stack.dsn is None:
            raise ValueError("the fleet ledger reads certctl's tables: the stack has no database DSN")
        self.stack, self.injector = stack, injector
        self.agent_ids, self.certificate_ids = list(agent_ids), list(certificate_ids)
        self.renewed_epoch: float | None = None  # when the bulk-renew was sent (epoch seconds)
        self.last_success: dict[str, float] = {}  # agent -> epoch of its last successful answer
        self.first_after_fault: dict[str, float] = {}  # agent -> epoch of its first success sent after
        self.evidence = Evidence()  # deliveries, unanswered polls, Failed reports (faults/fleet_losses.py)
        self.findings = FleetFindings()
        self.ticks_running_at_read = 0  # agent ticks still running when the tables were read
        self.bulk_answer = ""  # the bulk-renew's status and error or body head (for failure messages)
        self.bulk_answered = asyncio.Event()  # set once the bulk-renew got its answer (or failed)
        self._ticks = threading.Condition()  # agent ticks in flight (counts() waits for them to end)
        self._in_flight = 0

    def observe(self, fleet: Any) -> Any:
        """The fleet's iteration, its ticks in flight counted: the tables are read once they ended
        (a poll still running at the end has claimed jobs its agent has not seen yet)."""

        async def observed(ctx: Any) -> None:
            with self._ticks:
                self._in_flight += 1
            try:
                await fleet(ctx)
            finally:
                with self._ticks:
                    self._in_flight -= 1
                    self._ticks.notify_all()

        observed.__name__ = "agent_fleet"
        return observed

    def wait_for_ticks(self, timeout_s: float) -> int:
        """Block until no agent tick is in flight (at most ``timeout_s``); the ticks still running."""
        with self._ticks:
            self._ticks.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)
            return self._in_flight

    # -- during the phase (on the event loop: cheap) ------------------------------------------------
    def fault_epoch(self) -> float | None:
        """When the fault was injected (the injector's first ``inject`` event), or None yet."""
        return next((e.at for e in self.injector.events if e.what == "inject"), None)

    def listen(self, method: str, url: str, body: bytes | None, resp: Any) -> None:
        """A FaultWatch listener: note each agent request's outcome."""
        match = AGENT_PATH.search(url)
        if match is None:
            return
        agent, rest = match.group(1), match.group(2)
        now = time.time()
        sent = now - (monotonic_ns() - resp.start_ns) / NS if getattr(resp, "start_ns", 0) else now
        if 200 <= resp.status < 300:
            self.last_success[agent] = now
            fault = self.fault_epoch()
            if fault is not None and sent >= fault and agent not in self.first_after_fault:
                self.first_after_fault[agent] = now
            if method == "GET" and rest == "work" and b'"id"' in (resp.body or b""):
                self._note_delivered(resp.body)
            elif method == "POST" and rest.endswith("/status") and b'"status":"Failed"' in (body or b""):
                self.evidence.reported_failed.add(rest.split("/")[1])
        elif method == "GET" and rest == "work" and resp.status == 0:
            last = self.evidence.unanswered_poll.get(agent, 0.0)
            self.evidence.unanswered_poll[agent] = max(last, sent)

    def _note_delivered(self, body: bytes) -> None:
        try:
            jobs = json.loads(body).get("jobs") or []
        except (ValueError, AttributeError):
            return
        self.evidence.delivered.update(str(j.get("id")) for j in jobs if isinstance(j, dict))

    # -- after the phase (off the event loop) -------------------------------------------------------
    def counts(self) -> dict[str, int]:
        if self.renewed_epoch is None:
            raise RuntimeError("the bulk-renew was never sent: nothing to account for")
        self.ticks_running_at_read = self.wait_for_ticks(TICKS_DRAIN_S)
        since = self.renewed_epoch - 1.0  # clock reads on one machine; a second of margin
        with connect_pg(self.stack.dsn, connect_timeout=10) as conn:
            jobs = conn.execute(JOBS, (self.certificate_ids, since)).fetchall()
            versions = dict(conn.execute(VERSIONS, (self.certificate_ids, since)).fetchall())
            offline = Counter(dict(conn.execute(OFFLINE, (self.agent_ids,)).fetchall()))
        f = self.findings = FleetFindings(versions={str(k): int(n) for k, n in versions.items()})
        f.offline = Counter({str(k): int(n) for k, n in offline.items()})
        renewed, deployed = set(), set()
        for job_id, job_type, status, agent, cert, created in jobs:
            f.jobs[(job_type, status)] += 1
            if job_type == "Deployment":
                deployed.add(cert)
            elif status == "Completed":
                renewed.add(cert)
            if status != "Completed":
                cause, why = classify(str(job_id), job_type, status, agent, float(created), self.evidence)
                f.jobs_left[(job_type, status, cause, why)] += 1
        f.never_deployed = len(renewed - deployed)
        fault = self.fault_epoch()
        if fault is not None:
            f.reconnect_s = {a: t - fault for a, t in self.first_after_fault.items()}
        causes = f.by_cause()
        unexplained = sum(n for (_, _, _, why), n in f.jobs_left.items() if why == "unexplained")
        reconnected = len(set(self.agent_ids) & set(f.reconnect_s))
        return {
            "lost_jobs": causes["lost"],
            "lost_jobs_unexplained": unexplained,
            "stuck_jobs_known_defect": causes["known_defect"],
            "jobs_unfinished": causes["unfinished"],
            "duplicate_issuance": sum(1 for n in f.versions.values() if n > 1),
            "renewals_issued": len(f.versions),
            "renewals_not_issued": len(set(self.certificate_ids) - set(f.versions)),
            "agents_offline": sum(f.offline.values()),
            "agents_reconnected": reconnected,
            "agents_not_reconnected": len(self.agent_ids) - reconnected,
        }

    def record(self, ctx: Any, tags: dict[str, str]) -> None:
        """The trends and tagged counters of the findings (called after :meth:`counts`)."""
        f = self.findings
        for seconds in f.reconnect_s.values():
            ctx.trend("agent_reconnect_time", round(seconds * NS), tags)
        if f.reconnect_s and set(self.agent_ids) <= set(f.reconnect_s):
            ctx.trend("fleet_recovery_time", round(max(f.reconnect_s.values()) * NS), tags)
        for (job_type, status, cause, why), n in f.jobs_left.items():
            job = {"job_type": job_type, "job_status": status, "cause": cause, "why": why}
            ctx.counter("jobs_left", n, {**tags, **job})

    def figures(self) -> dict[str, Any]:
        """The findings, JSON-safe, for the test's report property and the README."""
        f = self.findings
        times = sorted(f.reconnect_s.values())
        return {
            "jobs": {f"{t}/{s}": n for (t, s), n in sorted(f.jobs.items())},
            "jobs_left": {f"{t}/{s}/{c}/{w}": n for (t, s, c, w), n in sorted(f.jobs_left.items())},
            "renewals_never_deployed": f.never_deployed,
            "agents_not_online": dict(f.offline),
            "reconnect_s": {
                "agents": len(times),
                "p50": round(times[len(times) // 2], 3) if times else None,
                "max": round(times[-1], 3) if times else None,
            },
            "bulk_renew": self.bulk_answer,
            "delivered_jobs": len(self.evidence.delivered),
            "agents_with_unanswered_poll": len(self.evidence.unanswered_poll),
            "jobs_reported_failed": len(self.evidence.reported_failed),
            "ticks_running_at_read": self.ticks_running_at_read,
        }


def bulk_renewal(stack: Stack, ledger: FleetLedger, fleet: Any = None):
    """One iteration: ``POST /certificates/bulk-renew`` with the ledger's ``certificate_ids``.

    Notes the send time in the ledger (the jobs it reads are those created since) and, given the
    fleet, starts its drain watch (issued / renewed as the agents saw it). ``bulk_renew_*`` counters
    hold certctl's answer; ``bulk_renew_status`` its status.
    """
    url, headers, body = bulk_renew_call(stack, ledger.certificate_ids)
    watch = fleet.watch_drain(ledger.certificate_ids) if fleet is not None else None

    async def iteration(ctx) -> None:
        ledger.renewed_epoch = time.time()
        if watch is not None:
            watch.requested()  # before the send: a CSR cannot be accepted before its job exists
        try:
            resp = await ctx.request(
                "POST", url, headers=headers, body=body, tags={"step": "bulk_renew"}, timeout=60
            )
        finally:
            ledger.bulk_answered.set()
        ctx.counter("bulk_renew_status", resp.status)
        said = resp.error or (resp.body or b"")[:200].decode(errors="replace")
        ledger.bulk_answer = f"{resp.status} {said}"
        if resp.status == 200:
            record_bulk_counts(ctx, resp.body)

    return iteration


def after_bulk_renewal(fault: tuple[Any, dict[str, Any]], ledger: FleetLedger, wait_s: float):
    """The fault scenario ``(iteration, options)``, its fault held back until the bulk-renew answered.

    A fault that lands while certctl is still creating the renewal's jobs measures a different thing
    (a bulk request cut short, its jobs partly created, the client without an answer); this keeps the
    fault after the acknowledgement, waiting at most ``wait_s`` (then it goes ahead, and the test's
    check of the bulk-renew's status says why). The wait is recorded as ``fault_held_for_bulk_renew``;
    the fault's own figures are timed from the injection, after the wait.
    """
    iteration, options = fault

    async def held(ctx: Any) -> None:
        began = monotonic_ns()
        try:
            async with asyncio.timeout(wait_s):
                await ledger.bulk_answered.wait()
        except TimeoutError:
            pass
        ctx.trend("fault_held_for_bulk_renew", monotonic_ns() - began)
        await iteration(ctx)

    return held, options
