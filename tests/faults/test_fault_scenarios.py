"""Faults under a steady API mix: certctl restarted, PostgreSQL restarted or slow, a bad network.

Each test runs certctl's API mix (certificate creation and listing, 20 req/s each) for the
phase, injects one fault at a set fraction of it, and asserts on the fault scenario's metrics
(pytest_certload/faults/driver.py): the load recovered (``recovery_time``: p95 of every window
back under its limit, no errors), within 30 s, and no acknowledged certificate was lost or
written twice (``lost_work``, ``duplicated_work``; against certctl also ``audit_rows_missing``).
"""

from __future__ import annotations

import dataclasses
import json
from urllib.parse import urlsplit

import numpy as np
import pytest

from pytest_certload.engine.http import make_ssl_context
from pytest_certload.faults import (
    CertificateLedger,
    FaultWatch,
    NetworkFault,
    NetworkUnavailable,
    PostgresSlow,
    certctl_restart,
    fault_failure,
    fault_scenario,
    postgres_restart,
)
from pytest_certload.scenarios import api

pytestmark = pytest.mark.faults

RATE = 20  # per second, each of the two API scenarios
#: the API mix's own p95 limit (tests/api/test_api.py): a window is healthy again under it
P95_LIMIT_MS = 2000
RECOVERY = {"fault_recovered": ["rate==1"], "recovery_time": ["max<30s"], "recovery_after_undo": ["max<10s"]}
MIN_DOCKER_RESTART_PHASE_S = 10.0
NO_LOST_WORK = {"lost_work": ["count==0"], "duplicated_work": ["count==0"]}


def api_mix(stack, plan, watch: FaultWatch) -> dict:
    """The two API scenarios, their requests noted by the watch."""
    arrival = {
        "executor": "constant-arrival-rate",
        "rate": RATE,
        "time_unit": "1s",
        "duration": f"{plan.phase_s}s",
        "pre_allocated_vus": 20,
        "max_vus": 200,
        "graceful_stop": f"{plan.request_timeout}s",
        "timeout": f"{plan.request_timeout}s",  # per request: none outlives the phase by much
    }
    return {
        "issuance_acceptance": (watch.wrap(api.issuance_acceptance(stack)), arrival),
        "list_certificates": (watch.wrap(api.list_certificates(stack)), arrival),
    }


def ledger_for(stack, watch: FaultWatch) -> CertificateLedger:
    ledger = CertificateLedger(stack.dsn, audit=stack.server == "certctl")
    watch.listeners.append(ledger.listen)
    return ledger


def thresholds_for(stack) -> dict:
    audit = {"audit_rows_missing": ["count==0"]} if stack.server == "certctl" else {}
    return {**RECOVERY, **NO_LOST_WORK, **audit}


def run_with_fault(certload, record, stack, plan, watch, injector, at_s, **kwargs):
    """The API mix plus the fault scenario in one phase; the fault's report kept as a property."""
    ledger = ledger_for(stack, watch)
    fault = fault_scenario(
        injector,
        watch,
        at_s=at_s,
        phase_s=plan.phase_s,
        thresholds=thresholds_for(stack),
        accounting=[ledger],
        settle_s=30.0,
    )
    kwargs.setdefault("stack", stack)  # the stack under fault: its CA, labels and server-side figures
    with injector:
        result = certload.run_many({**api_mix(stack, plan, watch), "fault": fault}, **kwargs)
    record("certload_fault", json.dumps(injector.report()))
    problem = fault_failure(result.samples)
    assert problem is None, problem
    shown = {"fault": injector.describe(), **figures(result)}
    record("certload_fault_figures", json.dumps(shown))
    print("certload fault figures:", json.dumps(shown))  # in the report's captured output (-rA)
    return result


def figures(result) -> dict:
    """The fault scenario's figures, for the report and the README."""
    samples = result.samples
    errors = {
        dict(tags).get("kind", "none"): n
        for (name, tags), n in samples.counters.items()
        if name == "fault_errors" and n
    }
    recorded = {name for name, _ in samples.counters}
    counts = {
        name: samples.select_counter(name, {"scenario": "fault"})
        for name in ("lost_work", "duplicated_work", "acknowledged_writes", "audit_rows_missing")
        if name in recorded
    }
    trends = {}
    for name in ("recovery_time", "recovery_after_undo", "time_to_first_success", "fault_inject_duration"):
        values = samples.select_trend(name, {"scenario": "fault"})
        trends[name] = round(float(values.max()) / 1e9, 3) if values.size else None
    window = {}
    for (name, tags), values in samples.trends.items():
        step = dict(tags).get("step")
        if name == "fault_window_duration" and values.size:
            window[f"window_p50_ms_{step}"] = round(float(np.percentile(values, 50)) / 1e6, 1)
    return {"errors_by_kind": errors, **counts, **trends, **window}


def window_p50_ms(result, step: str) -> float:
    values = result.samples.select_trend("fault_window_duration", {"scenario": "fault", "step": step})
    assert values.size, f"no {step} request was sent while the fault was in place"
    return float(np.percentile(values, 50)) / 1e6


def assert_window_was_unhealthy(result, hold_s: float) -> None:
    """The windowed fault was visible to the load: it did not recover before the fault was undone."""
    recovery = result.samples.select_trend("recovery_time", {"scenario": "fault"})
    assert recovery.size == 1 and recovery[0] / 1e9 >= hold_s * 0.9, figures(result)


def skip_if_restart_cannot_fit(stack, plan) -> None:
    """A container restart takes ~2 s here: a 3 s phase leaves no time to see the load recover."""
    if stack.kind == "docker" and plan.phase_s < MIN_DOCKER_RESTART_PHASE_S:
        pytest.skip(
            f"a container restart takes ~2 s: give the phase at least {MIN_DOCKER_RESTART_PHASE_S:g} s "
            f"(--certload-duration), or use the native stack"
        )


def fault_errors(result) -> float:
    return result.samples.select_counter("fault_errors", {"scenario": "fault"})


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_certctl_restarted(certload, fault_stack, fault_plan, record, signal_name):
    stack, provider = fault_stack
    skip_if_restart_cannot_fit(stack, fault_plan)
    watch = FaultWatch(P95_LIMIT_MS, window_s=fault_plan.window_s)
    injector = certctl_restart(provider, signal_name)
    result = run_with_fault(certload, record, stack, fault_plan, watch, injector, at_s=fault_plan.at(0.25))
    result.assert_thresholds()
    # the restart really took certctl away: requests failed while it was down, at the connection
    assert fault_errors(result) > 0, f"no request failed during the restart: {figures(result)}"
    assert [e.what for e in injector.events] == ["inject", "ready", "injected", "undone"]
    assert [e.at for e in injector.events] == sorted(e.at for e in injector.events)


def test_postgres_restarted(certload, fault_stack, fault_plan, record):
    stack, provider = fault_stack
    watch = FaultWatch(P95_LIMIT_MS, window_s=fault_plan.window_s)
    injector = postgres_restart(provider)
    why_not = provider.cannot_restart("postgresql")
    if why_not:
        pytest.skip(why_not)
    skip_if_restart_cannot_fit(stack, fault_plan)
    result = run_with_fault(certload, record, stack, fault_plan, watch, injector, at_s=fault_plan.at(0.25))
    result.assert_thresholds()
    assert injector.ready_s is not None and injector.ready_s > 0


def test_postgres_slow_window(certload, fault_stack, fault_plan, record):
    """Every write to managed_certificates takes 200 ms longer for a third of the phase.

    Recovery is judged against a p95 limit the delay breaches (150 ms), so ``recovery_time`` spans
    the window and ``recovery_after_undo`` says how long its effects outlived it.
    """
    stack, _ = fault_stack
    delay_s = 0.2
    watch = FaultWatch(delay_s * 750, window_s=fault_plan.window_s)
    injector = PostgresSlow(stack.dsn, hold_s=fault_plan.at(0.33), delay_s=delay_s)
    result = run_with_fault(certload, record, stack, fault_plan, watch, injector, at_s=fault_plan.at(0.25))
    result.assert_thresholds()
    # measured, not assumed: creations sent in the window took at least the delay, lists did not
    assert window_p50_ms(result, "create") >= delay_s * 1000 * 0.95
    assert window_p50_ms(result, "list") < delay_s * 1000
    assert_window_was_unhealthy(result, injector.hold_s)


def test_network_delay_and_loss(certload, fault_stack, fault_plan, record, tmp_path):
    """50 ms each way and 5 % packet loss between generator and certctl for a third of the phase."""
    stack, _ = fault_stack
    delay_ms = 50.0
    try:
        port = urlsplit(stack.certctl_url).port
        link = NetworkFault(port, tmp_path, hold_s=fault_plan.at(0.33), delay_ms=delay_ms, loss=0.05)
    except NetworkUnavailable as exc:
        pytest.skip(str(exc))
    with link:
        via_link = dataclasses.replace(stack, certctl_url=link.url)
        # the leaf names 127.0.0.1, not the link's 10.214.N.2: the chain is still verified against
        # the stack's CA, the host name is not
        ctx = make_ssl_context(stack.ca_bundle)
        ctx.check_hostname = False
        # judged against a p95 limit the delay breaches: every round trip gains 2 x 50 ms
        watch = FaultWatch(1.5 * delay_ms, window_s=fault_plan.window_s)
        result = run_with_fault(
            certload,
            record,
            via_link,
            fault_plan,
            watch,
            link,
            at_s=fault_plan.at(0.25),
            ssl_context=ctx,
        )
    result.assert_thresholds()
    # the link really was slower while the fault was on: at least one delayed round trip per request
    assert window_p50_ms(result, "list") >= 2 * delay_ms * 0.9
    assert_window_was_unhealthy(result, link.hold_s)
    record("certload_fault_mechanism", link.mechanism)
