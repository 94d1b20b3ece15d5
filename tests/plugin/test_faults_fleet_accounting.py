"""The fleet ledger's reasoning without a server: what the agents' requests prove, how each job left
is classified, what is recorded (faults/fleet_accounting.py, faults/fleet_losses.py).

The end-to-end scenario is tests/faults/test_fleet_faults.py; these pin the rules it relies on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from pytest_certload.faults.fleet_accounting import FleetFindings, FleetLedger, after_bulk_renewal
from pytest_certload.faults.fleet_losses import Evidence, classify, explain
from pytest_certload.faults.injector import FaultEvent

BASE = "https://127.0.0.1:1/api/v1/agents"
CLAIMED = ("Deployment", "Running", "known_defect", "processor-claims-agent-deployments")


class FakeInjector:
    def __init__(self) -> None:
        self.events: list[FaultEvent] = []


class FakeCtx:
    def __init__(self) -> None:
        self.trends: list[tuple[str, int, dict]] = []
        self.counters: list[tuple[str, float, dict]] = []

    def trend(self, name, value, tags=None) -> None:
        self.trends.append((name, value, dict(tags or {})))

    def counter(self, name, value=1, tags=None) -> None:
        self.counters.append((name, value, dict(tags or {})))


def resp(status: int, body: bytes = b"", error: str = "") -> SimpleNamespace:
    return SimpleNamespace(status=status, body=body, error=error, start_ns=0)


def ledger(agents=("ag-1", "ag-2")) -> tuple[FleetLedger, FakeInjector]:
    injector = FakeInjector()
    stack = SimpleNamespace(dsn="postgresql://unused", certctl_url="https://127.0.0.1:1")
    return FleetLedger(stack, list(agents), ["mc-1"], injector), injector  # type: ignore[arg-type]


# --- classify: the cause of each job left ------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_type", "status", "evidence", "expected"),
    [
        ("Deployment", "Pending", Evidence(), ("unfinished", "still-offered")),
        ("Renewal", "AwaitingCSR", Evidence(), ("unfinished", "still-offered")),
        ("Deployment", "Running", Evidence(delivered={"j"}), ("lost", "status-report-lost")),
        # a poll left unanswered after the job existed may have claimed it
        ("Deployment", "Running", Evidence(unanswered_poll={"ag-1": 105.0}), ("lost", "poll-answer-lost")),
        # ... one sent before the job existed cannot have: certctl's processor did (defect 1)
        (
            "Deployment",
            "Running",
            Evidence(unanswered_poll={"ag-1": 95.0}),
            ("known_defect", "processor-claims-agent-deployments"),
        ),
        ("Deployment", "Running", Evidence(), ("known_defect", "processor-claims-agent-deployments")),
        ("Renewal", "Running", Evidence(), ("lost", "csr-completion-not-atomic")),
        ("Deployment", "Failed", Evidence(reported_failed={"j"}), ("lost", "failed-during-fault")),
        ("Deployment", "Failed", Evidence(), ("lost", "unexplained")),
        ("Renewal", "Cancelled", Evidence(), ("lost", "unexplained")),
    ],
)
def test_each_job_left_gets_the_cause_the_evidence_supports(job_type, status, evidence, expected) -> None:
    assert classify("j", job_type, status, "ag-1", 100.0, evidence) == expected


def test_explanations_name_the_defect_or_the_mechanism() -> None:
    assert "processor-claims-agent-deployments" in explain(
        "known_defect", "processor-claims-agent-deployments", "Deployment", "Running"
    )
    assert "internal/service/renewal.go" in explain("lost", "csr-completion-not-atomic", "Renewal", "Running")
    assert explain("lost", "unexplained", "Renewal", "Cancelled").startswith("LOST")
    findings = FleetFindings(
        jobs_left=Counter({("Renewal", "Running", "lost", "csr-completion-not-atomic"): 2}), never_deployed=1
    )
    assert findings.by_cause() == Counter({"lost": 3})
    lines = findings.explanations()
    assert lines[0].startswith("2 x Renewal Running: lost to the crash [csr-completion-not-atomic]")
    assert lines[1].startswith("1 x Renewal Completed without a Deployment job")


# --- the listener: what the agents' requests prove ----------------------------------------------------


def test_the_listener_notes_deliveries_failed_reports_unanswered_polls_and_reconnections() -> None:
    book, injector = ledger()
    work = b'{"count":2,"jobs":[{"id":"job-a","type":"Deployment"},{"id":"job-b","type":"Renewal"}]}'
    book.listen("GET", f"{BASE}/ag-1/work", None, resp(200, work))
    book.listen("POST", f"{BASE}/ag-1/jobs/job-a/status", b'{"error":"x","status":"Failed"}', resp(200))
    book.listen("POST", f"{BASE}/ag-1/jobs/job-c/status", b'{"error":"","status":"Completed"}', resp(200))
    assert book.evidence.delivered == {"job-a", "job-b"}
    assert book.evidence.reported_failed == {"job-a"}
    assert book.first_after_fault == {}  # no fault yet: successes are not reconnections
    injector.events.append(FaultEvent("inject", time.time() - 0.001))
    book.listen("GET", f"{BASE}/ag-2/work", None, resp(0, error="connection_refused: [Errno 111]"))
    assert "ag-2" in book.evidence.unanswered_poll  # refused may follow a first try that arrived
    book.listen("POST", f"{BASE}/ag-2/heartbeat", b"{}", resp(200))
    book.listen("POST", f"{BASE}/ag-2/heartbeat", b"{}", resp(200))
    assert list(book.first_after_fault) == ["ag-2"]
    book.listen("GET", "https://127.0.0.1:1/api/v1/certificates", None, resp(200))  # not an agent's
    assert set(book.last_success) == {"ag-1", "ag-2"}


def test_fleet_recovery_time_is_recorded_only_when_every_agent_came_back() -> None:
    book, _ = ledger()
    book.findings = FleetFindings(reconnect_s={"ag-1": 0.5})
    ctx = FakeCtx()
    book.record(ctx, {"fault": "certctl_restart"})
    assert [t[0] for t in ctx.trends] == ["agent_reconnect_time"]  # ag-2 never came back
    book.findings = FleetFindings(
        reconnect_s={"ag-1": 0.5, "ag-2": 1.25},
        jobs_left=Counter(
            {("Deployment", "Running", "known_defect", "processor-claims-agent-deployments"): 3}
        ),
    )
    ctx = FakeCtx()
    book.record(ctx, {"fault": "certctl_restart"})
    assert ("fleet_recovery_time", 1_250_000_000, {"fault": "certctl_restart"}) in ctx.trends
    (name, n, tags), *_ = ctx.counters
    assert name == "jobs_left" and n == 3 and tags["cause"] == "known_defect"


def test_counts_refuse_to_account_for_a_renewal_never_sent() -> None:
    book, _ = ledger()
    with pytest.raises(RuntimeError, match="bulk-renew was never sent"):
        book.counts()


# --- timing helpers ----------------------------------------------------------------------------------


def test_the_fault_waits_for_the_bulk_renewals_answer_and_no_longer_than_its_bound() -> None:
    async def scenario(answer_after: float | None, wait_s: float) -> tuple[float, float]:
        book, _ = ledger()
        began = time.monotonic()
        ran: list[float] = []

        async def fault(ctx) -> None:
            ran.append(time.monotonic() - began)

        held, options = after_bulk_renewal((fault, {"executor": "constant-vus"}), book, wait_s)
        assert options == {"executor": "constant-vus"}
        if answer_after is not None:
            asyncio.get_running_loop().call_later(answer_after, book.bulk_answered.set)
        ctx = FakeCtx()
        await held(ctx)
        ((name, value, _),) = ctx.trends
        assert name == "fault_held_for_bulk_renew"
        return ran[0], value / 1e9

    ran, held = asyncio.run(scenario(0.2, 5.0))
    assert 0.2 <= ran < 2.0 and 0.2 <= held < 2.0  # after the answer, not the bound
    ran, held = asyncio.run(scenario(None, 0.3))
    assert 0.3 <= ran < 2.0  # never answered: goes ahead at the bound


def test_counts_wait_for_agent_ticks_still_running() -> None:
    async def scenario() -> tuple[int, int]:
        book, _ = ledger()
        release = asyncio.Event()

        async def fleet(ctx) -> None:
            await release.wait()

        tick = asyncio.create_task(book.observe(fleet)(FakeCtx()))
        await asyncio.sleep(0)
        running = await asyncio.to_thread(book.wait_for_ticks, 0.05)  # a tick in flight: bound hit
        asyncio.get_running_loop().call_later(0.05, release.set)
        done = await asyncio.to_thread(book.wait_for_ticks, 5.0)
        await tick
        return running, done

    assert asyncio.run(scenario()) == (1, 0)
