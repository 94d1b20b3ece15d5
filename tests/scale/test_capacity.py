"""Capacity of certctl per scenario: the highest rate at which the scenario's own thresholds hold.

Not "passed at 167/s" but "holds at 340/s, fails at 360/s", and what that means as a fleet: agents
at the real agent's intervals (a heartbeat every 60 s), certificates at a 47-day lifetime renewed
30 days before expiry (rp-standard's window, the policy issuance_acceptance's certificates carry).
Each step is a short constant-arrival-rate phase (the marker's ``duration``, 10 s); the search
climbs x2 from the marker's ``rate`` and bisects to 5 % (pytest_certload/capacity/).

``--certload-duration=3s`` (CI) makes every step 3 s and scales the budget alike (2 min -> 36 s), so
a search takes well under a minute; it may then end on its budget before the resolution: the
interval it reports is still true, and says so. For a measurement, give the search room:
``CERTLOAD_CAPACITY_BUDGET=10m`` (a k6 duration, read here) replaces the budget. A shortened run also
caps the highest step at ``SHORT_RUN_MAX_RATE``: it checks the search, not the machine's limits.
"""

from __future__ import annotations

import os

import pytest

from pytest_certload import capacity
from pytest_certload.scenarios import api, scale

#: the scenarios' own thresholds, as tests/api/test_api.py and tests/scale/test_scale.py give them
HEARTBEAT_THRESHOLDS = {"http_req_duration": ["p(95)<500", "p(99)<1000"], "http_req_failed": ["rate<0.001"]}
ISSUANCE_THRESHOLDS = {"http_req_duration": ["p(95)<2000", "p(99)<5000"], "http_req_failed": ["rate<0.01"]}
LIST_THRESHOLDS = {"http_req_duration": ["p(95)<800", "p(99)<2000"], "http_req_failed": ["rate<0.01"]}
RESOLUTION = 0.05
#: with --certload-duration (CI): the highest step, below where one generator saturates on 2 shared cores
SHORT_RUN_MAX_RATE = 400


def scenario(name, rate, max_rate, thresholds, fleets=()):
    """One scenario's whole marker (certload_fleets reads the closest certload marker's fleets)."""
    marks = pytest.mark.certload(
        executor="constant-arrival-rate",
        rate=rate,  # the first step
        time_unit="1s",
        duration="10s",  # each step
        pre_allocated_vus=20,  # for the first step's rate; a step scales them with its rate
        max_vus=200,
        thresholds=thresholds,
        fleets=list(fleets),
        capacity={"max_rate": max_rate, "resolution": RESOLUTION, "budget": "2m"},
    )
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.scale
@pytest.mark.parametrize(
    "name",
    [
        scenario("agent_heartbeat", 50, 6400, HEARTBEAT_THRESHOLDS, ["agent_fleet"]),
        scenario("issuance_acceptance", 25, 3200, ISSUANCE_THRESHOLDS),
        scenario("list_certificates", 25, 3200, LIST_THRESHOLDS, [api.LIST_FLEET]),
    ],
)
def test_capacity(certload, certload_stack, certload_fleets, name, request):
    if name == "agent_heartbeat":  # heartbeats -> agents at one heartbeat every 60 s
        iteration = scale.agent_storm(certload_stack, list(certload_fleets["agent_fleet"].ids))
        fleet = capacity.agent_heartbeats()
    elif name == "issuance_acceptance":  # POST /api/v1/certificates -> certificates renewed every 17 d
        iteration = api.issuance_acceptance(certload_stack)
        fleet = capacity.certificate_renewals(47, 30, what="certificate creation (POST /api/v1/certificates)")
    else:  # a read with no fleet meaning: the interval and the curve only
        iteration, fleet = api.list_certificates(certload_stack), None
    overrides = {}
    if os.environ.get("CERTLOAD_CAPACITY_BUDGET"):
        overrides["budget"] = os.environ["CERTLOAD_CAPACITY_BUDGET"]
    if request.config.getoption("certload_duration"):
        # a shortened (functional) run checks the search, not this machine's limits: on 2 shared cores
        # one generator saturates near 3,200 heartbeats/s against the stand-in, which is an ERROR by design
        overrides["max_rate"] = SHORT_RUN_MAX_RATE
    result = certload.capacity(iteration, name=name, fleet=fleet, **overrides)
    request.node.user_properties.append(("capacity", result.describe()))
    result.assert_found()
    assert result.runs and all(r.stats["p95_ms"] is not None for r in result.runs if not r.saturated)
    if result.status == "bracketed":
        assert result.width <= RESOLUTION + 1e-9
    if fleet is not None:
        assert result.to_dict()["fleet"]["holds"] == pytest.approx(fleet.size(result.holds))
