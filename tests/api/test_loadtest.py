"""``make loadtest`` itself: k6.js's six scenarios in one phase, as its options block has them.

issuance_acceptance from 0 s, list_certificates from +5 s, the four handshakes from +10 s (k6's
``startTime``; ``--certload-duration`` scales the stagger with the duration, so the overlap
survives a short run), each with its own thresholds, plus k6.js's global
``http_req_failed: rate<0.01`` over all of them (the marker's thresholds apply phase-wide).
A handshake whose target the stack lacks is left out, as ``test_connector_tier`` does.
"""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import api, connector

pytestmark = [pytest.mark.api, pytest.mark.connector]


def _api(start_time: str, p95: str, p99: str, scenario: str) -> dict:
    return {
        "executor": "constant-arrival-rate",
        "rate": 50,
        "time_unit": "1s",
        "duration": "5m",
        "pre_allocated_vus": 50,
        "max_vus": 200,
        "start_time": start_time,
        "thresholds": {f"http_req_duration{{scenario:{scenario}}}": [f"p(99)<{p99}", f"p(95)<{p95}"]},
    }


def _handshake(target: str, p95: str, p99: str) -> dict:
    return {
        "executor": "constant-arrival-rate",
        "rate": 100,
        "time_unit": "1m",
        "duration": "5m",
        "pre_allocated_vus": 10,
        "max_vus": 50,
        "start_time": "10s",
        "tags": {"target_type": target},
        "thresholds": {f"http_req_duration{{target_type:{target}}}": [f"p(99)<{p99}", f"p(95)<{p95}"]},
    }


#: k6.js's options.scenarios and their thresholds, option for option
K6_JS = {
    "issuance_acceptance": _api("0s", "2000", "5000", "issuance_acceptance"),
    "list_certificates": _api("5s", "800", "2000", "list_certificates"),
    "nginx_handshake": _handshake("nginx", "1000", "3000"),
    "apache_handshake": _handshake("apache", "1000", "3000"),
    "haproxy_handshake": _handshake("haproxy", "1000", "3000"),
    "f5_handshake": _handshake("f5", "1500", "5000"),
}
#: k6.js's check per scenario (recorded as checks{check:<name>})
K6_JS_CHECKS = {
    "issuance_acceptance": "create status 201",
    "list_certificates": "list status 200",
    **{f"{t}_handshake": f"{t} 2xx" for t in ("nginx", "apache", "haproxy", "f5")},
}


@pytest.mark.certload(thresholds={"http_req_failed": ["rate<0.01"]}, fleets=[api.LIST_FLEET])
def test_make_loadtest(certload, certload_stack, certload_fleets):
    targets = [t for t in ("nginx", "apache", "haproxy", "f5") if t in certload_stack.targets]
    scenarios = {
        "issuance_acceptance": (api.issuance_acceptance(certload_stack), K6_JS["issuance_acceptance"]),
        "list_certificates": (api.list_certificates(certload_stack), K6_JS["list_certificates"]),
        **{
            f"{t}_handshake": (connector.handshake(certload_stack, t), K6_JS[f"{t}_handshake"])
            for t in targets
        },
    }
    result = certload.run_many(scenarios)
    result.assert_thresholds()
    # the phase-wide threshold is k6.js's global one, judged over every scenario's requests
    (overall,) = result.phase.phase_verdicts
    assert overall.metric_key == "http_req_failed" and overall.count == result.samples.select_counter(
        "http_reqs"
    )
    for name in scenarios:
        trues, total = result.samples.select_rate("checks", {"scenario": name, "check": K6_JS_CHECKS[name]})
        assert total > 0 and trues == total, f"{name}: check {K6_JS_CHECKS[name]!r} held {trues}/{total}"
    # the stagger survived --certload-duration: list and handshakes started while issuance still ran
    issuance = result["issuance_acceptance"].scenario
    for name in scenarios:
        started = result[name].scenario.start_offset_s
        assert started < issuance.start_offset_s + issuance.scheduled_s, (
            f"{name} started after issuance ended"
        )
    problem = api.fleet_listing_problem(result.samples, certload_fleets[api.LIST_FLEET])
    assert problem is None, problem
