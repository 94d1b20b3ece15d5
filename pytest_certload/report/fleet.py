"""Agent fleets in the summary and the terminal: fleet size, connections held, renewal-drain figures.

Read from what a phase already holds: the agent-fleet executor's meta (``agents``,
``agents_connected``, ``http_client``, ``ticks``), the probe's ``connections_held{side}`` counters
and the drain's counters and trends (scenarios/agents.py, agents/drain.py). A phase without an
agent-fleet scenario adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DRAIN_COUNTERS = (
    "drain_requested",
    "drain_renewed",
    "drain_left",
    "drain_jobs_left",
    "drain_certificates_per_s",
)


def fleet_entries(records: Sequence[Any]) -> list[dict[str, Any]]:
    """One entry per agent-fleet scenario of every phase (PhaseVerdicts)."""
    out = []
    for record in records:
        samples = record.samples
        scenarios = samples.meta.get("scenarios") or {}
        for name, meta in scenarios.items():
            if meta.get("executor") != "agent-fleet":
                continue
            held = {
                side: samples.select_counter("connections_held", {"side": side})
                for side in ("generator", "certctl")
                if any(n == "connections_held" and ("side", side) in tags for n, tags in samples.counters)
            }
            entry: dict[str, Any] = {
                "test": record.nodeid,
                "scenario": name,
                "agents": meta.get("agents_total"),
                "agents_connected": meta.get("agents_connected"),
                "http_client": meta.get("http_client"),
                "ticks": meta.get("ticks"),
                "backoffs": meta.get("backoffs"),
                "connections_held": held,
            }
            if samples.select_counter("drain_requested"):
                renewed = samples.trend_stats("drain_time_to_renewed")
                entry["drain"] = {
                    **{k.removeprefix("drain_"): samples.select_counter(k) for k in DRAIN_COUNTERS},
                    "time_to_renewed_ms": {k: renewed.get(k) for k in ("med", "p(95)", "max", "count")},
                }
            out.append(entry)
    return out


def fleet_lines(summary: dict[str, Any]) -> list[str]:
    """Terminal lines: '<scenario>: 1,000 agents (1,000 connected, http 2), connections held ...'."""
    lines = []
    for e in summary.get("agent_fleet") or ():
        held = ", ".join(f"{side} {n:,.0f}" for side, n in e["connections_held"].items()) or "not counted"
        lines.append(
            f"{e['scenario']}: {e['agents']:,} agents ({e['agents_connected']:,} connected, "
            f"http {e['http_client']}), connections held: {held}"
        )
        drain = e.get("drain")
        if drain:
            t = drain["time_to_renewed_ms"]
            timing = "none renewed"
            if t.get("count"):
                p50, p95, top = (t[k] / 1000 for k in ("med", "p(95)", "max"))
                timing = f"time-to-renewed p50 {p50:.1f} s, p95 {p95:.1f} s, max {top:.1f} s"
            lines.append(
                f"  renewal drain: {drain['renewed']:g}/{drain['requested']:g} renewed, "
                f"{drain['certificates_per_s']:.2f} certificates/s, {timing}; "
                f"left: {drain['left']:g} (agents' view), {drain['jobs_left']:g} jobs not Completed"
            )
    return lines


def phase_fleet_lines(phase: Any) -> list[str]:
    """The same lines for one phase (the HTML report's per-phase section); [] without a fleet."""
    return fleet_lines({"agent_fleet": fleet_entries([phase])})
