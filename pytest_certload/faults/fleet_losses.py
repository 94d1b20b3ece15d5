"""Why a renewal's job was left not ``Completed`` after a fault, from certctl's code and what the agents saw.

Each job left is put in one of three causes, with the key of what explains it:

* ``unfinished`` -- ``Pending`` deployments and ``AwaitingCSR`` renewals: certctl's work poll still
  offers both (internal/repository/postgres/job.go:459-608), so nothing is lost; the phase ended first;
* ``known_defect`` -- a certctl defect that needs no fault (scenarios/agent_defects.py): a
  ``Deployment`` left ``Running`` that no agent ever received, whose agent had no poll without an
  answer, was claimed by the scheduler's job processor (``processor-claims-agent-deployments``);
* ``lost`` -- left in a state certctl never offers again, by the fault: one of :data:`MECHANISMS`
  (a crash between two of certctl's non-transactional steps, an agent's report lost to the crash),
  or ``unexplained`` when none fits -- the figure a fault test holds at 0.

The evidence comes from the fleet's requests (faults/fleet_accounting.py): which job ids an agent
received in a work poll, when each agent last sent a poll that got no answer (it may have claimed
deployments created before it, and the crash took the answer), which jobs an agent reported
``Failed`` (answered 200).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_certload.scenarios import agent_defects
from pytest_certload.scenarios.defects import Defect, catalogue

UNFINISHED = frozenset({"Pending", "AwaitingCSR"})
RENEWAL_TYPES = frozenset({"Renewal", "Issuance"})


def _crash(key: str, title: str, where: str, effect: str) -> Defect:
    """How a crash of certctl leaves a job where certctl never picks it up again (cited in its source)."""
    return Defect(key, title, where, effect)


#: how a crash loses a job; a certctl defect that a crash reveals is cited in agent_defects, once
MECHANISMS = catalogue(
    agent_defects.DEFECTS["csr-completion-not-atomic"],
    _crash(
        "status-report-lost",
        "the agent reports a deployment's outcome once and does not retry",
        "cmd/agent/deploy.go:84-97, 236-239; the work poll flipped the job to Running when it "
        "handed it out (internal/repository/postgres/job.go:459-608)",
        "a report the crash refused leaves the job Running; certctl never offers a Running job again "
        "(the offline-agent reaper fails Running jobs only of agents Offline for 5 min)",
    ),
    _crash(
        "poll-answer-lost",
        "a work poll flips Pending deployments to Running before it answers",
        "internal/repository/postgres/job.go:459-608",
        "a poll whose answer the crash took (sent after the job was created, no answer) may have "
        "claimed its agent's deployments: Running, never delivered",
    ),
    _crash(
        "failed-during-fault",
        "the agent reported the job Failed because certctl was down (CSR submission or "
        "certificate pickup refused)",
        "cmd/agent/deploy.go:90-97 and the CSR path; certctl retries Failed jobs only on its "
        "5-minute tick (internal/service/job.go:368-419, attempts never incremented)",
        "not Completed within the phase; certctl may retry it minutes later",
    ),
)


@dataclass
class Evidence:
    """What the agents' requests showed (filled by the fleet ledger's listener)."""

    delivered: set[str] = field(default_factory=set)  # job ids some agent received in a work poll
    #: agent -> when its last poll without an answer was sent (epoch): a refused answer included, as
    #: the client retries a reused connection once on a fresh one, and the first try may have arrived
    unanswered_poll: dict[str, float] = field(default_factory=dict)
    reported_failed: set[str] = field(default_factory=set)  # job ids an agent reported Failed (200)


def classify(
    job_id: str, job_type: str, status: str, agent: str | None, created: float, ev: Evidence
) -> tuple[str, str]:
    """(cause, key) of one job left not Completed (``created``: its created_at, epoch); module doc."""
    if status in UNFINISHED:
        return "unfinished", "still-offered"
    if job_type == "Deployment" and status == "Running":
        if job_id in ev.delivered:
            return "lost", "status-report-lost"
        if agent is not None and ev.unanswered_poll.get(agent, 0.0) >= created:
            return "lost", "poll-answer-lost"  # that poll came after the job existed: it may have claimed it
        if agent_defects.explain(job_type, status):
            return "known_defect", "processor-claims-agent-deployments"
    if job_type in RENEWAL_TYPES and status == "Running":
        return "lost", "csr-completion-not-atomic"
    if status == "Failed" and job_id in ev.reported_failed:
        return "lost", "failed-during-fault"
    return "lost", "unexplained"


def explain(cause: str, key: str, job_type: str, status: str) -> str:
    """The line a failure message or a report gives for (cause, key)."""
    if cause == "known_defect":
        return agent_defects.explain(job_type, status) or key
    if cause == "unfinished":
        return "not finished when the phase ended: certctl still offers it to the agent's next work poll"
    mechanism = MECHANISMS.get(key)
    if mechanism is not None:
        defect = " (a certctl defect)" if key in agent_defects.DEFECTS else ""
        return f"lost to the crash [{key}]{defect} {mechanism.title} ({mechanism.where}): {mechanism.effect}"
    return "LOST, and no known mechanism explains it: not Completed, in a state certctl does not offer again"
