"""Connector tier (k6.js): a new TCP + TLS connection per iteration to each target sidecar, 100/min."""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import connector

pytestmark = pytest.mark.connector


def _arrival(target: str, p95: str, p99: str) -> dict:
    return {
        "executor": "constant-arrival-rate",
        "rate": 100,
        "time_unit": "1m",
        "duration": "5m",
        "pre_allocated_vus": 10,
        "max_vus": 50,
        "tags": {"target_type": target},
        "thresholds": {
            f"http_req_duration{{target_type:{target}}}": [f"p(95)<{p95}", f"p(99)<{p99}"],
            f"http_req_failed{{target_type:{target}}}": ["rate<0.01"],
        },
    }


SCENARIOS = {
    "nginx": _arrival("nginx", "1000", "3000"),
    "apache": _arrival("apache", "1000", "3000"),
    "haproxy": _arrival("haproxy", "1000", "3000"),
    "f5": _arrival("f5", "1500", "5000"),
}


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(t, id=f"{t}_handshake", marks=pytest.mark.certload(**opts))
        for t, opts in SCENARIOS.items()
    ],
)
def test_handshake(certload, certload_stack, require_target, target):
    require_target(target)
    result = certload.run(connector.handshake(certload_stack, target), name=f"{target}_handshake")
    result.assert_thresholds()
    # every iteration really handshook: TLS time was recorded for each request, not once per VU
    tls = result.samples.select_trend("http_req_tls_handshaking", {"target_type": target})
    reqs = result.samples.select_trend("http_req_duration", {"target_type": target})
    assert tls.size == reqs.size > 0
    assert (tls > 0).all(), "a request reused a connection: the connector tier must measure handshakes"
    # k6.js's check, under its name
    assert result.samples.select_rate("checks", {"check": f"{target} 2xx"}) == (reqs.size, reqs.size)


def test_connector_tier(certload, certload_stack, require_target):
    """All present targets at once, as ``make loadtest`` ran them, with per-target thresholds."""
    present = [t for t in SCENARIOS if t in certload_stack.targets]
    if not present:
        pytest.skip("no target sidecar is available on this stack")
    result = certload.run_many(
        {f"{t}_handshake": (connector.handshake(certload_stack, t), SCENARIOS[t]) for t in present}
    )
    result.assert_thresholds()
