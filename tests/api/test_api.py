"""API tier (k6.js): certificate creation and listing at 50 req/s each, 5 minutes by default."""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import api

ARRIVAL = {
    "executor": "constant-arrival-rate",
    "rate": 50,
    "time_unit": "1s",
    "duration": "5m",
    "pre_allocated_vus": 50,
    "max_vus": 200,
}
ISSUANCE_THRESHOLDS = {
    "http_req_duration{scenario:issuance_acceptance}": ["p(95)<2000", "p(99)<5000"],
    "http_req_failed{scenario:issuance_acceptance}": ["rate<0.01"],
}
LIST_THRESHOLDS = {
    "http_req_duration{scenario:list_certificates}": ["p(95)<800", "p(99)<2000"],
    "http_req_failed{scenario:list_certificates}": ["rate<0.01"],
}

pytestmark = pytest.mark.api


def assert_listed_its_fleet(result, fleet) -> None:
    """Every list request of the phase answered the list fleet's first page and total, nothing else."""
    problem = api.fleet_listing_problem(result.samples, fleet)
    assert problem is None, problem


@pytest.mark.certload(**ARRIVAL, thresholds=ISSUANCE_THRESHOLDS)
def test_issuance_acceptance(certload, certload_stack):
    result = certload.run(api.issuance_acceptance(certload_stack), name="issuance_acceptance")
    result.assert_thresholds()


@pytest.mark.certload(**ARRIVAL, thresholds=LIST_THRESHOLDS, fleets=[api.LIST_FLEET])
def test_list_certificates(certload, certload_stack, certload_fleets):
    result = certload.run(api.list_certificates(certload_stack), name="list_certificates")
    result.assert_thresholds()
    assert_listed_its_fleet(result, certload_fleets[api.LIST_FLEET])


@pytest.mark.certload(fleets=[api.LIST_FLEET])
def test_api_tier(certload, certload_stack, certload_fleets):
    """Both API scenarios at once, as ``make loadtest`` ran them, each with its own thresholds."""
    result = certload.run_many(
        {
            "issuance_acceptance": (
                api.issuance_acceptance(certload_stack),
                {**ARRIVAL, "thresholds": ISSUANCE_THRESHOLDS},
            ),
            "list_certificates": (
                api.list_certificates(certload_stack),
                {**ARRIVAL, "start_time": "5s", "thresholds": LIST_THRESHOLDS},
            ),
        }
    )
    result.assert_thresholds()
    # the POSTs of the same phase do not reach the listed page: it is the fleet's, as when alone
    assert_listed_its_fleet(result, certload_fleets[api.LIST_FLEET])
