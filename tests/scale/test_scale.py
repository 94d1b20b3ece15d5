"""Scale tier (k6/bulk_renewal.js, agent_storm.js, acme_burst.js) and the ACME flow (k6/acme_flow.js).

The originals' environment knobs work here too, as options or under their k6 names (see
pytest_certload/seed_knobs.py): K6_AGENT_RATE / K6_AGENT_FLEET (agent_storm), K6_ACME_VUS /
K6_ACME_DURATION (acme_burst), K6_VUS / K6_DURATION (acme_flow), CERTCTL_ACME_DIRECTORY (both ACME).
"""

from __future__ import annotations

import pytest

from pytest_certload import seed_knobs
from pytest_certload.scenarios import acme, scale

BURST_THRESHOLDS = {
    "acme_directory_duration": ["p(95)<500"],
    "acme_new_nonce_duration": ["p(95)<300"],
    "acme_renewal_info_duration": ["p(95)<800"],
}
FLOW_THRESHOLDS = {  # acme_flow.js's names
    "directory_duration": ["p(95)<500"],
    "new_nonce_duration": ["p(95)<300"],
    "renewal_info_duration": ["p(95)<800"],
    "http_req_failed": ["rate<0.01"],
}


@pytest.mark.scale
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=5,
    time_unit="1s",
    duration="5m",
    pre_allocated_vus=10,
    max_vus=30,
    fleets=["bulk_renewal"],
    thresholds={
        "http_req_duration{scenario:bulk_renewal}": ["p(95)<2000", "p(99)<5000"],
        "http_req_failed{scenario:bulk_renewal}": ["rate<0.01"],
    },
)
def test_bulk_renewal(certload, certload_stack, certload_fleets, request):
    """Bulk renewal of the seeded 10K fleet under load.

    What certctl does per call is reported, not asserted: its criteria mode resolves the 50 oldest
    matches, so the first call of a session enqueues 50 renewals and later ones match the same 50
    and skip them (``bulk_renew_calls{matched,enqueued}``, the test's ``bulk_renew_per_call`` user
    property: e.g. "15 calls: 14 x matched 50 / enqueued 0, 1 x matched 50 / enqueued 50").
    Asserted is what the scenario is for, in any test order: every call answered and its criteria
    reached the seeded fleet, and what bulk renewal has put in progress is the fleet's, nothing else.
    """
    fleet = certload_fleets["bulk_renewal"]
    result = certload.run(scale.bulk_renewal(certload_stack), name="bulk_renewal")
    calls = scale.bulk_calls(result.samples)
    per_call = scale.describe_bulk_calls(calls)
    # a user property (JUnit XML with junit_family=xunit1/legacy; report.user_properties for plugins)
    request.node.user_properties.append(("bulk_renew_per_call", per_call))
    result.assert_thresholds()
    assert_renewed_only_the_fleet(result.samples, certload_stack, calls, fleet.method)


def assert_renewed_only_the_fleet(samples, stack, calls, seeded_via: str) -> None:
    per_call = scale.describe_bulk_calls(calls)
    assert calls and not any(matched == 0 for matched, _ in calls), f"a call matched nothing ({per_call})"
    why = f"(fleet seeded via {seeded_via}; over the API its rows cannot be made the oldest)"
    foreign = samples.select_counter("bulk_renew_foreign")
    assert foreign == 0, f"{foreign:g} renewals of certificates outside the seeded fleet {why}"
    in_progress, total = scale.renewal_in_progress(stack)
    outside = [i for i in in_progress if not i.startswith(scale.BULK_FLEET_PREFIX)]
    assert total > 0 and not outside, (
        f"{total} certificates in RenewalInProgress, {len(outside)} outside the fleet: {outside[:5]} {why}"
    )


@pytest.fixture
def agent_ids(request, certload_stack, certload_fleets, certload_seed) -> list[str]:
    """The agents the storm addresses: K6_AGENT_FLEET of them (default: the whole seeded fleet).

    Fewer than the fleet holds: ids 1..N, as agent_storm.js's modulo picked them. More: the fleet is
    grown to N rows first (over SQL; same rows, same id pattern, idempotent).
    """
    seeded = certload_fleets["agent_fleet"]
    wanted = seed_knobs.knob_value(request.config, "agent_fleet") or len(seeded.ids)
    if wanted <= len(seeded.ids):
        return list(seeded.ids[:wanted])
    if not certload_stack.dsn:
        pytest.fail(
            f"K6_AGENT_FLEET={wanted} is more than the {len(seeded.ids)} agents seeded, and growing the "
            "fleet needs the stack's database (seeding over the API gives agents server ids)",
            pytrace=False,
        )
    from pytest_certload.seeding.copy_writer import seed_fleet
    from pytest_certload.seeding.fleet import load_fleet
    from pytest_certload.stack.secret import connect_pg

    fleet = load_fleet("agent_fleet", certload_seed.seeds_dir).with_count(wanted)  # the session's seeds
    with connect_pg(certload_stack.dsn, connect_timeout=10) as conn:
        report = seed_fleet(conn, fleet)
    return list(report.ids)


@pytest.mark.scale
@pytest.mark.certload_knobs(rate="agent_rate")
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=167,
    time_unit="1s",
    duration="5m",
    pre_allocated_vus=50,
    max_vus=200,
    fleets=["agent_fleet"],
    thresholds={
        "http_req_duration{scenario:agent_storm}": ["p(95)<500", "p(99)<1000"],
        "http_req_failed{scenario:agent_storm}": ["rate<0.001"],
    },
)
def test_agent_storm(certload, certload_stack, agent_ids):
    result = certload.run(scale.agent_storm(certload_stack, agent_ids), name="agent_storm")
    result.assert_thresholds()


@pytest.mark.scale
@pytest.mark.acme
@pytest.mark.certload_knobs(vus="acme_burst_vus", duration="acme_burst_duration")
@pytest.mark.certload(
    executor="constant-vus",
    vus=200,
    duration="5m",
    fleets=["acme_profile"],
    thresholds={**BURST_THRESHOLDS, "http_req_failed{scenario:acme_burst}": ["rate<0.001"]},
)
def test_acme_burst(certload, certload_stack, certload_fleets, request):
    """200 closed-loop clients, no think time; 429s are expected and reported by shape."""
    directory = seed_knobs.knob_value(request.config, "acme_directory")
    result = certload.run(acme.acme_burst(certload_stack, directory), name="acme_burst")
    result.assert_thresholds()


@pytest.mark.acme
@pytest.mark.certload_knobs(vus="acme_flow_vus", duration="acme_flow_duration")
@pytest.mark.certload(
    executor="constant-vus",
    vus=100,
    duration="5m",
    fleets=["acme_profile"],
    thresholds=FLOW_THRESHOLDS,
)
def test_acme_flow(certload, certload_stack, certload_fleets, request):
    """acme_flow.js: 100 clients with a 1 s pause between rounds, under its own names.

    The scenario is acme_flow.js's ``acme_directory_and_nonce`` and its trends are the script's
    ``directory_duration``, ``new_nonce_duration``, ``renewal_info_duration`` (acme_burst's are
    ``acme_*``), so its thresholds and summary keys are the script's own.
    """
    directory = seed_knobs.knob_value(request.config, "acme_directory")
    result = certload.run(acme.acme_flow(certload_stack, directory), name=acme.FLOW_SCENARIO)
    result.assert_thresholds()
