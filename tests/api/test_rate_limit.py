"""The API rate limiter as a measured scenario: offered 100 req/s against certctl's 50/s, burst 100."""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import ratelimit

OFFERED = 100  # req/s, twice the limiter's refill rate


@pytest.fixture
def rate_limited_stack(certload_stack, certload_stack_variant):
    """The session stack when its limiter is on; otherwise a second stack of the same kind with it on.

    Under pytest-xdist every worker gets the same second stack, so the limiter's one bucket sees the
    whole offered load (a stack per worker would absorb each worker's half on its own).
    """
    if certload_stack.rate_limit_enabled:
        return certload_stack
    if not certload_stack.owned:
        pytest.skip(
            "external deployment with an unknown limiter setting: run with --certload-rate-limit=on "
            "against a stack the plugin starts"
        )
    return certload_stack_variant("rate-limited", rate_limit=True)


@pytest.mark.api
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=OFFERED,
    time_unit="1s",
    duration="30s",
    pre_allocated_vus=20,
    max_vus=100,
    thresholds={
        "http_req_failed{scenario:rate_limiter}": ["rate<0.01"],
        "http_req_duration{scenario:rate_limiter,status:429}": ["p(95)<500"],
    },
)
def test_rate_limiter(certload, rate_limited_stack):
    result = certload.run(  # stack=: the second stack's own session CA, labels and figures
        ratelimit.limited_list(rate_limited_stack), name="rate_limiter", stack=rate_limited_stack
    )
    result.assert_thresholds()
    phase = result.samples
    total = phase.select_counter("http_reqs")
    refused = phase.select_counter("http_reqs", {"status": "429"})
    expected = ratelimit.expected_rejections(OFFERED, total / OFFERED)
    # tolerance: 5 % of the requests plus a handful, for refill timing at the phase edges
    assert abs(refused - expected) <= 0.05 * total + 5, (
        f"limiter refused {refused:.0f} of {total:.0f} requests; a 50/s burst-100 bucket refuses "
        f"{expected:.0f} at {OFFERED}/s"
    )
    generic = phase.select_counter("rate_limited", {"shape": "generic"})
    assert generic == refused, "every 429 must be certctl's plain-text limiter answer with Retry-After: 1"
