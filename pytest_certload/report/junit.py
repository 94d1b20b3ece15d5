"""Key figures of a test's load phases as JUnit XML ``<property>`` entries (``item.user_properties``).

pytest's junitxml writes a test's ``user_properties`` (what ``record_property`` appends) as
``<properties>`` of its ``<testcase>``, so a CI dashboard shows p50/p95/p99, rates, errors and the
threshold verdicts next to each test without reading the summary JSON::

    certload.list_certificates.p95_ms = 12.4
    certload.list_certificates.thresholds = ok 3/3

Names are ``certload.<scenario>.<figure>``; a test with several phases numbers them
(``certload.phase2.<scenario>.<figure>``). Under pytest-xdist the figures come from the merged phase
(a test body sees every worker's samples pooled), so they are the whole run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_certload.report.summary import scenario_entry, stack_caveat
from pytest_certload.verdict import PhaseVerdict

PREFIX = "certload"


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def verdict_text(verdicts: Sequence[dict[str, Any]]) -> str:
    """``ok 3/3``, ``none``, or ``FAIL 1/3: p(95)<800 observed 1023.4`` (the breached ones)."""
    if not verdicts:
        return "none"
    failed = [v for v in verdicts if not v["ok"]]
    if not failed:
        return f"ok {len(verdicts)}/{len(verdicts)}"
    detail = "; ".join(
        f"{v['metric']}: {v['expression']} observed "
        + ("n/a" if v["observed"] is None else f"{v['observed']:.4g}{v.get('unit', '')}")
        for v in failed
    )
    return f"FAIL {len(failed)}/{len(verdicts)}: {detail}"


def phase_properties(phases: Sequence[PhaseVerdict]) -> list[tuple[str, object]]:
    """The properties of one test's phases, in a stable order."""
    out: list[tuple[str, object]] = []
    stack = next((p.stack for p in phases if p.stack), None)
    if stack:
        out.append((f"{PREFIX}.target", stack.get("target")))
        caveat = stack_caveat(stack)
        if caveat:
            out.append((f"{PREFIX}.caveat", caveat))
        if stack.get("postgres_profile"):
            out.append((f"{PREFIX}.postgres_profile", stack["postgres_profile"]))
    for i, phase in enumerate(phases):
        prefix = PREFIX if len(phases) == 1 else f"{PREFIX}.phase{i + 1}"
        for info in phase.scenarios:
            entry = scenario_entry(phase, info)
            d = entry["http_req_duration"]
            figures = {
                "p50_ms": d.get("med"),
                "p95_ms": d.get("p(95)"),
                "p99_ms": d.get("p(99)"),
                "achieved_rate_per_s": entry["achieved_rate_per_s"],
                "target_rate_per_s": entry["target_rate_per_s"],
                "error_rate": entry["error_rate"],
                "requests": entry["requests"],
                "dropped_iterations": entry["dropped_iterations"],
                "thresholds": verdict_text(entry["thresholds"]),
            }
            out += [(f"{prefix}.{info.name}.{k}", _rounded(v)) for k, v in figures.items() if v is not None]
        if phase.saturated:
            out.append((f"{prefix}.generator_saturated", phase.saturation_reason))
    return out
