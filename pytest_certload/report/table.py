"""The terminal table shown at the end of a session, and the --certload-list scenario table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_certload.report.fleet import fleet_lines
from pytest_certload.serverside.summary import compact_cell
from pytest_certload.thresholds import Verdict


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain left-aligned columns (numbers right-aligned), no colour: readable in CI logs."""
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str], header: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = str(cell)
            numeric = not header and text[:1].isdigit()
            out.append(text.rjust(widths[i]) if numeric else text.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(headers, header=True), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rate(achieved: float | None, target: float | None, vus: int | None) -> str:
    got = "-" if achieved is None else f"{achieved:.1f}"
    if target:
        return f"{got}/{target:.3g}"
    if vus:
        return f"{got} ({vus} vus)"
    return got


def header_lines(summary: dict[str, Any]) -> list[str]:
    """What answered: the target, the stand-in's caveat and why auto fell back, PostgreSQL's profile."""
    stack = summary["stack"]
    target = stack.get("target") or "no certload_stack (tests' own servers)"
    override = summary["options"].get("durationOverrideSeconds")
    lines = [f"target: {target}" + (f" (every phase's duration set to {override:g}s)" if override else "")]
    if stack.get("caveat"):
        lines.append(f"  {stack['caveat']}")
    if stack.get("fallback_reason"):
        lines.append(f"  certctl=auto fell back to the certctl stand-in: {stack['fallback_reason']}")
    if stack.get("postgres"):
        lines.append(f"  postgres: {stack['postgres']}")
    return lines


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Header with the target, one row per scenario, then every breached threshold.

    A verdict measured on the stand-in carries the stand-in's caveat in its own cell.
    """
    lines = header_lines(summary)
    rows = []
    breaches = []
    for name, s in summary["scenarios"].items():
        verdicts = s["thresholds"]
        passed = sum(v["ok"] for v in verdicts)
        if not verdicts:
            verdict_text = "none"
        elif passed == len(verdicts):
            verdict_text = f"ok {passed}/{len(verdicts)}"
        else:
            verdict_text = f"FAIL {len(verdicts) - passed}/{len(verdicts)}"
        if s.get("saturated"):
            verdict_text += " (generator saturated)"
        if s.get("aborted"):
            verdict_text += " (aborted)"
        elif s.get("interrupted"):
            verdict_text += " (interrupted)"
        if s.get("caveat"):
            verdict_text += f" ({s['caveat']})"
        d = s["http_req_duration"]
        error = s["error_rate"]
        rows.append(
            [
                name,
                str(s["requests"]),
                _rate(s["achieved_rate_per_s"], s["target_rate_per_s"], s["target_vus"]),
                _ms(d.get("med")),
                _ms(d.get("p(95)")),
                _ms(d.get("p(99)")),
                "-" if error is None else f"{error * 100:.2f}%",
                compact_cell(s.get("server")),
                verdict_text,
            ]
        )
        breaches += [f"  {name}: {Verdict.from_dict(v).describe()}" for v in verdicts if not v["ok"]]
    headers = [
        "scenario",
        "requests",
        "iter/s (target)",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "server cpu/q/tx per req",
        "thresholds",
    ]
    lines += render_table(headers, rows)
    lines += server_lines(summary)
    lines += fleet_lines(summary)  # report/fleet.py: agent fleets and renewal drains
    if breaches:
        lines += ["breached thresholds:", *breaches]
    return lines


def server_lines(summary: dict[str, Any]) -> list[str]:
    """One line per phase naming its CPU bottleneck (measured), when the server was sampled."""
    return [
        f"{', '.join(p['scenarios'])}: {p['bottleneck']}"
        for p in summary.get("server_side") or ()
        if p.get("bottleneck")
    ]
