"""The agent fleet under a certctl crash: certctl SIGKILLed while a bulk renewal drains (issue 18 §1).

The agent-bound fleet (agent, SQL-seeded target, certificate, mapping) runs as simulated agents;
a driver bulk-renews K of its certificates by explicit ``certificate_ids``; 3/4 of a work poll later,
while CSRs and deployments are in flight, certctl is SIGKILLed and started again
(``certctl_restart``, on the faults stack). The phase goes on; afterwards the fault scenario records
what the load saw (faults/driver.py: errors by kind, recovery of the agents' requests) and what the
fleet ledger found in certctl's tables (faults/fleet_accounting.py): ``lost_jobs`` (this renewal's
jobs not Completed and not explained by a known defect), ``stuck_jobs_known_defect`` (Deployment jobs
certctl's job processor claimed: never received by an agent), ``duplicate_issuance``,
``agents_offline``, ``agents_not_reconnected`` and ``fleet_recovery_time``. Thresholds judge them.

Under a short ``--certload-duration`` (CI: 3 s) the fleet is SHORT_RUN_AGENTS agents at
fractions of a second (printed as SHORTENED); otherwise REAL_AGENTS agents at 10 s / 5 s.
"""

from __future__ import annotations

import json

import pytest

from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.faults import FaultWatch, certctl_restart, fault_failure, fault_scenario
from pytest_certload.faults.fleet_accounting import FleetLedger, after_bulk_renewal, bulk_renewal

pytestmark = pytest.mark.faults

SHORT_RUN_S = 20.0
SHORT_RUN_AGENTS, SHORT_RUN_RENEWALS = 30, 20
SHORT_RUN_TIMING = {
    "heartbeat_interval": "0.5s",
    "poll_interval": "0.25s",
    "first_heartbeat_within": "0.2s",
    "first_poll_within": "0.1s",
}
SHORT_RUN_RENEW_AT_S = 0.35  # every agent has polled once
REAL_AGENTS, REAL_RENEWALS = 200, 100
REAL_TIMING = {
    "heartbeat_interval": "10s",
    "poll_interval": "5s",
    "first_heartbeat_within": "5s",
    "first_poll_within": "5s",
}
REAL_RENEW_AT_S = 12.0
MIN_DOCKER_RESTART_PHASE_S = 10.0
P95_LIMIT_MS = 2000  # the agent requests' own limit (tests/scale): a window is healthy again under it
THRESHOLDS = {
    "fault_recovered": ["rate==1"],
    "recovery_time": ["max<30s"],
    "fleet_recovery_time": ["max<30s"],  # every agent had a successful request again
    # lost to the fault with no known mechanism (faults/fleet_losses.py); ``lost_jobs`` itself is
    # reported: against certctl (and its stand-in) a crash mid-CSR loses the job by design, see README
    "lost_jobs_unexplained": ["count==0"],
    "duplicate_issuance": ["count==0"],
    "agents_offline": ["count==0"],
    "agents_not_reconnected": ["count==0"],
}
COUNTS = (
    "lost_jobs",
    "lost_jobs_unexplained",
    "jobs_unfinished",
    "stuck_jobs_known_defect",
    "duplicate_issuance",
    "renewals_issued",
    "renewals_not_issued",
    "agents_offline",
    "agents_reconnected",
    "agents_not_reconnected",
    "bulk_renew_enqueued",
)


def fleet_shape(phase_s: float) -> tuple[int, int, dict[str, str], float]:
    """(agents, renewals, timing, renew at) for a phase of ``phase_s``."""
    if phase_s < SHORT_RUN_S:
        return SHORT_RUN_AGENTS, SHORT_RUN_RENEWALS, dict(SHORT_RUN_TIMING), SHORT_RUN_RENEW_AT_S
    return REAL_AGENTS, REAL_RENEWALS, dict(REAL_TIMING), REAL_RENEW_AT_S


def seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def test_certctl_killed_during_a_renewal_drain(
    certload, fault_stack, fault_plan, fault_agent_bound, record, capsys
):
    stack, provider = fault_stack
    phase_s = fault_plan.phase_s
    if stack.kind == "docker" and phase_s < MIN_DOCKER_RESTART_PHASE_S:
        pytest.skip(f"a container restart takes ~2 s: phases of {MIN_DOCKER_RESTART_PHASE_S:g} s or more")
    agents, renewals, timing, renew_at = fleet_shape(phase_s)
    # three quarters of a work poll later: some CSRs accepted, the rest and the deployments in flight
    fault_at = round(renew_at + seconds(timing["poll_interval"]) * 0.75, 3)
    if phase_s < SHORT_RUN_S:
        with capsys.disabled():
            print(
                f"\n  fleet fault SHORTENED for a {phase_s:g} s phase: {agents} agents, {renewals} renewals, "
                f"poll {timing['poll_interval']}, bulk-renew at {renew_at:g} s, SIGKILL at {fault_at:g} s"
            )
    agent_ids, cert_ids = fault_agent_bound(agents)
    renew = cert_ids[:renewals]
    injector = certctl_restart(provider, "SIGKILL")
    fleet = AgentFleet(stack, agent_ids)
    ledger = FleetLedger(stack, agent_ids, renew, injector)
    watch = FaultWatch(P95_LIMIT_MS, request_timeout=fault_plan.request_timeout, window_s=fault_plan.window_s)
    watch.listeners.append(ledger.listen)
    fault = fault_scenario(
        injector, watch, at_s=fault_at, phase_s=phase_s, thresholds=THRESHOLDS, accounting=[ledger]
    )
    # never while certctl is still creating the renewal's jobs: after its answer (bounded wait)
    fault = after_bulk_renewal(fault, ledger, wait_s=fault_plan.request_timeout)
    scenarios = {
        "agent_fleet": (
            watch.wrap(ledger.observe(fleet)),
            {"executor": "agent-fleet", "agents": agents, "duration": f"{phase_s}s", **timing},
        ),
        "bulk_renew": (
            bulk_renewal(stack, ledger, fleet),
            {
                "executor": "constant-vus",
                "vus": 1,
                "max_iterations": 1,
                "duration": f"{phase_s}s",
                "start_time": f"{renew_at}s",
            },
        ),
        "fault": fault,
    }
    with injector:
        result = certload.run_many(scenarios, stack=stack)  # the stack under fault: its CA, labels, figures
    record("certload_fault", json.dumps(injector.report()))
    problem = fault_failure(result.samples)
    assert problem is None, problem

    shown = figures(result, ledger, fleet)
    record("certload_fault_figures", json.dumps(shown))
    print("certload fault figures:", json.dumps(shown))  # in the report's captured output (-rA)
    for line in ledger.findings.explanations():
        print("  jobs left:", line)
    samples = result.samples
    assert samples.select_counter("bulk_renew_status") == 200, shown
    assert samples.select_counter("bulk_renew_enqueued") == renewals, shown
    # the fault landed mid-drain: some renewals were not issued yet when certctl was killed
    assert shown["issued_before_fault"] < renewals, shown
    # and it took certctl away: agents' requests failed while it was down
    assert samples.select_counter("fault_errors", {"scenario": "fault"}) > 0, shown
    try:
        result.assert_thresholds()
    except AssertionError as exc:  # with what each job left is, and what explains it
        raise AssertionError("\n".join([str(exc), *ledger.findings.explanations()])) from None


def figures(result, ledger: FleetLedger, fleet: AgentFleet) -> dict:
    """The fault scenario's figures, the ledger's findings and the agents' view, for the README."""
    samples = result.samples
    errors = {
        dict(tags).get("kind", "none"): n
        for (name, tags), n in samples.counters.items()
        if name == "fault_errors" and n
    }
    counts = {name: samples.select_counter(name) for name in COUNTS}
    trends = {}
    for name in (
        "recovery_time",
        "time_to_first_success",
        "fault_inject_duration",
        "fleet_recovery_time",
        "fault_held_for_bulk_renew",
    ):
        values = samples.select_trend(name, {"scenario": "fault"})
        trends[name] = round(float(values.max()) / 1e9, 3) if values.size else None
    fault, renewed = ledger.fault_epoch(), ledger.renewed_epoch
    drain = fleet.drain
    before = None
    if drain is not None and fault is not None and renewed is not None:
        offset_ns = (fault - renewed) * 1e9
        before = sum(1 for t in drain.issued.values() if t < offset_ns)
    return {
        "errors_by_kind": errors,
        **counts,
        **trends,
        "fault_after_bulk_renew_s": round(fault - renewed, 3) if fault and renewed else None,
        "issued_before_fault": before,
        "renewed_as_agents_saw_it": len(drain.renewed) if drain is not None else None,
        "agent_jobs": fleet.to_meta()["jobs"],
        **ledger.figures(),
    }
