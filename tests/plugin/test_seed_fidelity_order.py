"""Results that do not depend on test order (issue 12), against the session's stack.

The original listed whatever the database held and bulk-renewed the 50 oldest t-platform/iss-local
certificates, whoever had made them. Here list_certificates lists a fleet of its own and the bulk
fleet is older than anything a test creates: listing alone or after the API tier answers the same
page, and bulk renewal after POSTs renews the fleet, not the POSTs.
"""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import api, scale


@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=20,
    time_unit="1s",
    duration="2s",
    pre_allocated_vus=5,
    max_vus=20,
    fleets=[api.LIST_FLEET],
)
def test_list_certificates_lists_the_same_fleet_alone_and_after_the_api_tier(
    certload, certload_stack, certload_fleets
):
    fleet = certload_fleets[api.LIST_FLEET]
    alone = certload.run(api.list_certificates(certload_stack), name="list_certificates")
    tier = certload.run_many(
        {
            "issuance_acceptance": (api.issuance_acceptance(certload_stack), {}),
            "list_certificates": (api.list_certificates(certload_stack), {"start_time": "1s"}),
        }
    )
    after = certload.run(api.list_certificates(certload_stack), name="list_certificates")
    created = tier.samples.select_counter("http_reqs", {"scenario": "issuance_acceptance", "status": "201"})
    assert created > 0, "the API tier created no certificate: nothing was tested"
    pages = [api.listed_pages(result.samples, "list_certificates") for result in (alone, tier, after)]
    assert pages[0].keys() == pages[1].keys() == pages[2].keys(), pages
    for result in (alone, tier, after):
        problem = api.fleet_listing_problem(result.samples, fleet)
        assert problem is None, problem
    for result in (alone, tier, after):
        result.assert_thresholds()


@pytest.mark.certload(
    executor="constant-arrival-rate", rate=10, time_unit="1s", duration="2s", pre_allocated_vus=2, max_vus=10
)
def test_bulk_renewal_renews_its_fleet_not_certificates_posted_before_it(
    certload, certload_stack, certload_seed
):
    """POSTs to the bulk criteria's team and issuer first, the fleet seeded after them (unless an
    earlier test seeded it): still the fleet is what the calls match and renew."""
    posted = certload.run_many(
        {"issuance_acceptance": (api.issuance_acceptance(certload_stack), {"max_iterations": 20})}
    )
    assert posted.samples.select_counter("http_reqs", {"status": "201"}) > 0
    certload_seed("bulk_renewal")  # a no-op when an earlier test seeded it: the POSTs are newer either way
    renewed = certload.run_many({"bulk_renewal": (scale.bulk_renewal(certload_stack), {"max_iterations": 3})})
    renewed.assert_thresholds()
    calls = scale.bulk_calls(renewed.samples)
    per_call = scale.describe_bulk_calls(calls)
    assert calls and not any(matched == 0 for matched, _ in calls), f"a call matched nothing ({per_call})"
    assert renewed.samples.select_counter("bulk_renew_foreign") == 0, (
        f"renewed outside the fleet ({per_call})"
    )
    in_progress, total = scale.renewal_in_progress(certload_stack)
    assert total > 0, "bulk renewal put nothing in progress"
    assert all(i.startswith(scale.BULK_FLEET_PREFIX) for i in in_progress), in_progress[:5]
