"""Renewal drain: bulk-renew K agent-bound certificates while the agent fleet runs (issue 13 §3, §4).

The agent-bound fleet (seeds/agent_bound_*.toml: one agent, one SQL-seeded target and one
certificate each, mapped) runs at the real agent's cadence; at ``start_time`` a driver bulk-renews K
of its certificates by explicit ``certificate_ids``. Each renewal must be issued (the agent's CSR
accepted), picked up and reported ``Completed`` by the agent -- and for SIDECAR certificates, whose
targets point at an nginx this test starts, served: a fresh TLS handshake sees the new leaf.
Measured: ``drain_time_to_issued`` / ``drain_time_to_renewed`` (trends from the bulk-renew request),
``drain_certificates_per_s``, and certctl's jobs table for those certificates at the end
(``drain_jobs{job_type,job_status}``, ``drain_jobs_left``: not Completed). Thresholds hold them like
any metric. The phase is bounded: a drain that does not finish in its budget ends the phase, and the
failure lists the stuck jobs by type and status and names the certctl defect that explains them
(pytest_certload/scenarios/agent_defects.py). Nothing here works around a defect; the set-up only
avoids spoiling the measurement (SQL-seeded targets, agents Online with a fresh heartbeat, explicit ids).

``--certload-duration`` below SHORT_RUN_S (CI: 3 s): SHORT_RUN_AGENTS agents, K = SHORT_RUN_RENEWALS,
intervals of a fraction of a second; printed on the output. Real runs: the parameters below.
``split=False``: the driver and the fleet it watches must be in one process.
"""

from __future__ import annotations

import pytest

from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.agents.sidecar_nginx import nginx_binary, start_nginx_sidecar
from pytest_certload.runner import GeneratorSaturated
from pytest_certload.scenarios import agent_defects
from pytest_certload.scenarios import agents as agent_scenarios
from pytest_certload.session import DURATION

SIDECAR = 3  # certificates whose targets are served by the test's nginx
SHORT_RUN_S = 20.0
SHORT_RUN_AGENTS, SHORT_RUN_RENEWALS = 30, 10
SHORT_RUN_TIMING = {
    "heartbeat_interval": "1s",
    "poll_interval": "0.25s",
    "first_heartbeat_within": "0.3s",
    "first_poll_within": "0.2s",
}
SHORT_RUN_RENEW_AT_S = 0.6  # every agent has polled once
#: real runs: connect over 10 s, then the real agent's 60 s / 30 s; renew once every agent polls
REAL_TIMING = {"first_heartbeat_within": "10s", "first_poll_within": "10s"}
REAL_RENEW_AT = "20s"
MARKER_DURATION_S = 180.0  # the marker's duration: the drain's budget in a real run


def drain_case(agents: int, renewals: int):
    return pytest.param(agents, renewals, id=f"{agents}agents-{renewals}renewals")


def fleet_thresholds(short: bool) -> dict:
    limit = "10000" if short else "120000"  # ms: a renewal is two work polls away at the real cadence
    return {
        "drain_time_to_renewed": [f"p(95)<{limit}"],
        "http_req_failed{agent_step:heartbeat}": ["rate<0.01"],
        "http_req_failed{agent_step:poll}": ["rate<0.01"],
    }


DRIVER_THRESHOLDS = {
    "drain_left": ["count<1"],  # every renewal issued, picked up, reported (and served)
    "drain_jobs_left": ["count<1"],  # certctl's jobs table: nothing pending, running or failed
    "drain_certificates_per_min": ["count>0"],  # thresholds read counters as whole numbers
}


@pytest.fixture
def agent_bound(certload_stack, certload_seeds_dir):
    """Seed the agent-bound fleet (idempotent) and return a function: count -> (agents, certs, targets)."""
    from pytest_certload.seeding.agent_bound import refresh_agents, seed_agent_bound_fleet
    from pytest_certload.stack.secret import connect_pg

    if not certload_stack.dsn:
        pytest.skip("the agent-bound fleet is seeded in SQL: this stack has no database DSN")

    def seed(count: int):
        with connect_pg(certload_stack.dsn, connect_timeout=10) as conn:
            report = seed_agent_bound_fleet(conn, count, seeds_dir=certload_seeds_dir)
            refresh_agents(conn, list(report.agent_ids))
            conn.commit()
        return list(report.agent_ids), list(report.certificate_ids), list(report.target_ids)

    return seed


@pytest.mark.scale
@pytest.mark.parametrize(("size", "renewals"), [drain_case(1000, 200), drain_case(5000, 1000)])
@pytest.mark.certload(duration="180s", graceful_stop="10s", split=False)  # the drain budget, both scenarios
def test_renewal_drain(certload, certload_stack, agent_bound, size, renewals, request, tmp_path, capsys):
    override = request.config.stash[DURATION]
    short = override is not None and override < SHORT_RUN_S
    if short:
        size, renewals = min(size, SHORT_RUN_AGENTS), min(renewals, SHORT_RUN_RENEWALS)
        timing = dict(SHORT_RUN_TIMING)
        # start_time is scaled like the duration (3 m -> the override): written so that it lands here
        renew_at = f"{SHORT_RUN_RENEW_AT_S * MARKER_DURATION_S / override:g}s"
        with capsys.disabled():
            print(
                f"\n  renewal drain SHORTENED for --certload-duration={override:g}s: {size} agents, "
                f"{renewals} renewals, poll {timing['poll_interval']} (a functional check)"
            )
    else:
        timing, renew_at = dict(REAL_TIMING), REAL_RENEW_AT
    if nginx_binary() is None:
        pytest.skip("nginx is not installed: the sidecar-bound renewals need it")
    agent_ids, cert_ids, target_ids = agent_bound(size)
    renew = cert_ids[:renewals]
    sidecar_targets = target_ids[:SIDECAR]
    sidecar = bind_sidecar(certload_stack, tmp_path, sidecar_targets)
    request.addfinalizer(sidecar.stop)
    fleet = AgentFleet(certload_stack, agent_ids, sidecar_targets=set(sidecar_targets))
    budget = override if override is not None else MARKER_DURATION_S
    driver, outcome = agent_scenarios.renewal_drain(
        certload_stack, fleet, renew, budget_s=budget, sidecar_bound=set(cert_ids[:SIDECAR])
    )
    try:
        result = run_drain(certload, fleet, driver, size, timing, renew_at, short)
    except GeneratorSaturated as exc:  # the jobs table still says how far certctl got: say it too
        raise GeneratorSaturated(
            f"{exc}\n{drain_failure(certload_stack, fleet, outcome, agent_ids, None)}"
        ) from None
    request.node.user_properties.append(("agent_fleet", fleet.to_meta()))
    assert outcome.bulk_status == 200, f"bulk-renew answered {outcome.bulk_status}"
    if not (outcome.finished and not outcome.jobs_left) or not result.ok:
        pytest.fail(drain_failure(certload_stack, fleet, outcome, agent_ids, result), pytrace=False)


def run_drain(certload, fleet, driver, size, timing, renew_at, short):
    """The fleet and the drain driver in one phase."""
    return certload.run_many(
        {
            "agent_fleet": (
                fleet,
                {
                    "executor": "agent-fleet",
                    "agents": size,
                    **timing,
                    "thresholds": fleet_thresholds(short),
                },
            ),
            "renewal_drain": (
                driver,
                {
                    "executor": "constant-vus",
                    "vus": 1,
                    "max_iterations": 1,
                    "start_time": renew_at,
                    "thresholds": DRIVER_THRESHOLDS,
                },
            ),
        }
    )


def bind_sidecar(stack, tmp_path, target_ids):
    """Start the test's nginx and point ``target_ids`` at it (SQL, plain config)."""
    from pytest_certload.seeding.agent_bound import bind_targets_to_sidecar
    from pytest_certload.stack.secret import connect_pg
    from pytest_certload.stack.tls import make_tls_material

    tls = make_tls_material(tmp_path / "tls")
    sidecar = start_nginx_sidecar(tmp_path / "sidecar", list(target_ids), tls)
    try:
        with connect_pg(stack.dsn, connect_timeout=10) as conn:
            bind_targets_to_sidecar(conn, list(target_ids), lambda t: sidecar.configs[t])
    except BaseException:
        sidecar.stop()
        raise
    return sidecar


#: stuck states with an ordinary reason (no certctl defect needed to explain them)
NOT_A_DEFECT = {
    "Pending": "not claimed yet: the agent's next work poll had not come when the budget ended "
    "(a longer budget drains them, unless a defect holds them)",
}


def drain_failure(stack, fleet, outcome, agent_ids, result) -> str:
    """Stuck jobs by type and status, the defect explaining each, and the agents' view."""
    drain = fleet.drain
    state = "finished" if outcome.finished else "did NOT finish"
    lines = [
        f"renewal drain {state} after {outcome.seconds:.1f} s: "
        f"{len(drain.renewed)} of {len(drain.expected)} renewed as the agents saw it "
        f"({len(drain.issued)} issued; sidecar-bound not served: {sorted(drain.not_served) or 'none'}); "
        f"bulk-renew {outcome.bulk_counts}",
        "certctl's jobs for these certificates, by (type, status): "
        + (", ".join(f"{t}/{s}={n}" for (t, s), n in sorted(outcome.jobs.items())) or "none"),
        f"agents' job outcomes: {fleet.to_meta()['jobs']}",
    ]
    for (job_type, status), n in sorted(outcome.jobs_left.items()):
        why = agent_defects.explain(job_type, status) or NOT_A_DEFECT.get(
            status, "not explained by a known certctl defect"
        )
        lines.append(f"  {n} x {job_type} {status}: {why}")
    for job_type, error, n in outcome.failed_errors:
        lines.append(f"    {n} x {job_type} Failed with last_error {error[:300]!r}")
    offline = agent_scenarios.agents_not_online(stack, agent_ids)
    if offline:
        lines.append(
            f"  agents not Online at the end: {dict(offline)} -- "
            + agent_defects.DEFECTS["offline-heartbeat-stale"].line()
        )
    if result is not None and not result.ok:
        lines.append(result.breach_message())
    if stack.caveat:
        lines.append(stack.caveat)
    return "\n".join(lines)
