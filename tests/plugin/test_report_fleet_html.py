"""The HTML report shows an agent fleet's figures: size, connections held from both ends, the drain.

The phases are built from samples (what an agent-fleet phase records: the executor's meta, the
probe's ``connections_held{side}`` counters, the drain driver's counters and trend), so the check
is about the report, not about running a fleet (tests/scale and tests/plugin/test_agents_* do that).
"""

from __future__ import annotations

import re
from html import unescape

import numpy as np

from pytest_certload.report.html import fleet_section, render_html
from pytest_certload.report.summary import build_summary
from pytest_certload.stats import PhaseSamples
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

MS = 1_000_000


def fleet_phase(*, certctl_side: bool = True, drain: bool = True) -> PhaseVerdict:
    """A phase as test_renewal_drain leaves it: 30 agents, a probe, a drain of 10 (8 renewed)."""
    counters = {("connections_held", (("scenario", "probe"), ("side", "generator"))): 30.0}
    if certctl_side:
        counters[("connections_held", (("scenario", "probe"), ("side", "certctl")))] = 29.0
    trends = {}
    if drain:
        driver = (("scenario", "renewal_drain"),)
        counters |= {
            ("drain_requested", driver): 10.0,
            ("drain_renewed", (("scenario", "agent_fleet"),)): 8.0,
            ("drain_left", driver): 2.0,
            ("drain_jobs_left", driver): 2.0,
            ("drain_certificates_per_s", driver): 4.5,
        }
        trends[("drain_time_to_renewed", (("scenario", "agent_fleet"),))] = np.array(
            [400 * MS, 500 * MS, 600 * MS, 700 * MS, 800 * MS, 900 * MS, 1000 * MS, 1900 * MS], dtype=np.int64
        )
    meta = {
        "wall_seconds": 3.0,
        "scenarios": {
            "agent_fleet": {
                "executor": "agent-fleet",
                "agents_total": 30,
                "agents_connected": 30,
                "http_client": "auto -> 1.1",
                "ticks": 120,
                "backoffs": 0,
            },
            "renewal_drain": {"executor": "constant-vus"},
        },
    }
    phase = PhaseVerdict("tests/x.py::test_fleet", PhaseSamples(trends, {}, counters, meta), 3.0, [])
    phase.scenarios = [ScenarioVerdict("agent_fleet", {"executor": "agent-fleet"}, "agent-fleet", None, 1)]
    return phase


def text_of(section: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", section))


def test_a_fleet_phase_gets_an_agent_fleet_section_with_both_ends_and_the_drain() -> None:
    section = fleet_section(fleet_phase())
    assert section.startswith("<h3>Agent fleet</h3>")
    text = text_of(section)
    assert "agent_fleet: 30 agents (30 connected, http auto -> 1.1)" in text
    assert "connections held: generator 30, certctl 29" in text
    assert "renewal drain: 8/10 renewed, 4.50 certificates/s" in text
    assert "left: 2 (agents' view), 2 jobs not Completed" in text


def test_a_certctl_side_not_counted_shows_only_the_generator() -> None:
    text = text_of(fleet_section(fleet_phase(certctl_side=False, drain=False)))
    assert "connections held: generator 30" in text and "certctl" not in text
    assert "renewal drain" not in text


def test_the_section_is_in_the_page_and_only_for_fleet_phases() -> None:
    fleet = fleet_phase()
    plain = PhaseVerdict("tests/x.py::test_api", PhaseSamples(meta={"wall_seconds": 3.0}), 3.0, [])
    summary = build_summary([fleet, plain], run_duration_s=6, machine={}, stack=None)
    page = render_html(summary, [fleet, plain], {"name": "fleet"})
    sections = page.split("<section class=phase")
    assert len(sections) == 3
    assert "<h3>Agent fleet</h3>" in sections[1] and "<h3>Agent fleet</h3>" not in sections[2]
    # after the server side, before the thresholds: where the reader looks for the target's figures
    first = sections[1]
    assert first.index("<h3>Server side</h3>") < first.index("<h3>Agent fleet</h3>")
    assert "generator 30, certctl 29" in unescape(first)
