"""Scale tier (k6/bulk_renewal.js, agent_storm.js, acme_burst.js) and the ACME flow (k6/acme_flow.js)."""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import acme, scale

ACME_TRENDS = {
    "acme_directory_duration": ["p(95)<500"],
    "acme_new_nonce_duration": ["p(95)<300"],
    "acme_renewal_info_duration": ["p(95)<800"],
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
def test_bulk_renewal(certload, certload_stack, certload_fleets):
    result = certload.run(scale.bulk_renewal(certload_stack), name="bulk_renewal")
    result.assert_thresholds()
    # certctl's criteria mode touches at most 50 certificates per call: say what was measured
    matched = result.result.select_counter("bulk_renew_matched")
    calls = result.result.select_counter("http_reqs", {"scenario": "bulk_renewal", "status": "200"})
    assert matched <= 50 * calls


@pytest.mark.scale
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=167,
    time_unit="1s",
    duration="5m",
    pre_allocated_vus=50,
    max_vus=300,
    fleets=["agent_fleet"],
    thresholds={
        "http_req_duration{scenario:agent_storm}": ["p(95)<500", "p(99)<1000"],
        "http_req_failed{scenario:agent_storm}": ["rate<0.001"],
    },
)
def test_agent_storm(certload, certload_stack, certload_fleets):
    agent_ids = certload_fleets["agent_fleet"].ids
    result = certload.run(scale.agent_storm(certload_stack, agent_ids), name="agent_storm")
    result.assert_thresholds()


@pytest.mark.scale
@pytest.mark.acme
@pytest.mark.certload(
    executor="constant-vus",
    vus=200,
    duration="5m",
    fleets=["acme_profile"],
    thresholds={**ACME_TRENDS, "http_req_failed{scenario:acme_burst}": ["rate<0.001"]},
)
def test_acme_burst(certload, certload_stack, certload_fleets):
    """200 closed-loop clients, no think time; 429s are expected and reported by shape."""
    result = certload.run(acme.acme_iteration(certload_stack), name="acme_burst")
    result.assert_thresholds()


@pytest.mark.acme
@pytest.mark.certload(
    executor="constant-vus",
    vus=100,
    duration="5m",
    fleets=["acme_profile"],
    thresholds={**ACME_TRENDS, "http_req_failed{scenario:acme_flow}": ["rate<0.01"]},
)
def test_acme_flow(certload, certload_stack, certload_fleets):
    """100 clients with acme_flow.js's 1 s pause between rounds."""
    result = certload.run(acme.acme_iteration(certload_stack, pause_s=1.0), name="acme_flow")
    result.assert_thresholds()
