"""ACME issuance under load: JWS-signed RFC 8555 orders, ARI on real certificates, per-account limits.

Against the stand-in these pass; against certctl at 151107c they fail, naming the defect
(pytest_certload/scenarios/acme_defects.py): no finalize can store its certificate there. Each test
records what happened as the user property ``acme`` (failures by step/type/status, orders left
processing, accounts blocked).

Challenge mode has no variant: certctl validates http-01 only by dialling
``http://<identifier>:80/.well-known/acme-challenge/<token>`` and refuses loopback addresses
(internal/api/acme/validators.go:250-331 via internal/validation/ssrf.go:100-180), and this project's
load may only reach loopback.
"""

from __future__ import annotations

import pytest

from pytest_certload.scenarios import acme_issuance
from pytest_certload.scenarios.acme_report import AcmeReport

STEP_THRESHOLDS = {
    "acme_new_order_duration": ["p(95)<500"],
    "acme_authz_duration": ["p(95)<500"],
    "acme_finalize_duration": ["p(95)<1000"],
    "acme_order_poll_duration": ["p(95)<500"],
    "acme_cert_download_duration": ["p(95)<500"],
    "acme_issuance_duration": ["p(95)<2000", "p(99)<5000"],
    "acme_certs_issued": ["count>0"],
    "acme_cert_invalid": ["rate==0"],
    "acme_order_failed": ["rate<0.01"],
}
_SETUPS: dict[str, acme_issuance.AcmeSetup] = {}


@pytest.fixture
def acme_setup(request, certload_stack, certload_fleets, tmp_path_factory) -> acme_issuance.AcmeSetup:
    """The directory and our issuer CA, once per stack (prof-test comes from the acme_profile fleet).

    The CA lives in the session's base temp (its parent under pytest-xdist, where workers share the
    stack), so every process registers the same one.
    """
    setup = _SETUPS.get(certload_stack.certctl_url)
    if setup is None:
        shared = tmp_path_factory.getbasetemp()
        if hasattr(request.config, "workerinput"):
            shared = shared.parent
        setup = acme_issuance.prepare(certload_stack, shared / "acme-issuer-ca")
        _SETUPS[certload_stack.certctl_url] = setup
    return setup


def record(request, report: AcmeReport) -> None:
    request.node.user_properties.append(("acme", report.summary()))


@pytest.mark.acme
@pytest.mark.scale
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=10,
    time_unit="1s",
    duration="1m",
    pre_allocated_vus=10,
    max_vus=50,
    fleets=["acme_profile"],
    thresholds={**STEP_THRESHOLDS, "acme_new_account_duration": ["p(95)<1000"]},
)
def test_acme_issuance(certload, acme_setup, request):
    """New orders at a constant rate; accounts roll during the phase (new-account timed as its step)."""
    scenario = acme_issuance.AcmeScenario(acme_setup)
    result = certload.run(scenario.issuance(), name="acme_issuance")
    report = AcmeReport.of(result.samples, scenario)
    record(request, report)
    report.assert_ok(result)


@pytest.mark.acme
@pytest.mark.scale
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=5,
    time_unit="1s",
    duration="1m",
    pre_allocated_vus=10,
    max_vus=50,
    fleets=["acme_profile"],
    thresholds={
        **STEP_THRESHOLDS,
        "acme_ari_duration": ["p(95)<500"],
        "acme_ari_ok": ["rate==1"],
        "acme_certs_renewed": ["count>0"],
    },
)
def test_acme_renewal(certload, acme_setup, request):
    """Issue, ask renewal-info for that certificate (RFC 9773), renew with ``replaces``."""
    scenario = acme_issuance.AcmeScenario(acme_setup)
    result = certload.run(scenario.renewal(), name="acme_renewal")
    report = AcmeReport.of(result.samples, scenario)
    record(request, report)
    report.assert_ok(result)


@pytest.mark.acme
@pytest.mark.scale
@pytest.mark.certload(
    executor="constant-arrival-rate",
    rate=50,
    time_unit="1s",
    duration="10s",
    pre_allocated_vus=10,
    max_vus=50,
    fleets=["acme_profile"],
    split=False,  # one account is the subject: under xdist it runs whole on one worker
)
def test_acme_account_rate_limit(certload, acme_setup, request):
    """One account, new-order + finalize past certctl's 100 orders/hour: every 429 is a rateLimited
    problem, and the orders/hour one says when to retry (Retry-After)."""
    scenario = acme_issuance.AcmeScenario(acme_setup, accounts=1, expected=lambda s: s in (200, 201, 429))
    result = certload.run(scenario.rate_limit(), name="acme_rate_limit")
    report = AcmeReport.of(result.samples, scenario)
    record(request, report)
    limited = report.rate_limited
    if not limited:
        pytest.fail(report.failure("no 429: the phase never drove the account past a limit"), pytrace=False)
    not_problem = {k: n for k, n in limited.items() if ("type", "rateLimited") not in k}
    hourly = {k: n for k, n in limited.items() if ("limit", "hourly") in k}
    assert not not_problem, report.failure(f"429s that are not rateLimited problem documents: {not_problem}")
    assert hourly, report.failure("the orders/hour limit was never reached")
    report.assert_ok(result)
