"""Capacity results on the terminal and in the summary (``pytest_certload.capacity`` does the search).

The summary's ``capacity`` list has one entry per search (:func:`summary_entry`): the interval, how
the search ended, its plan, the rate -> p50/p95/p99/error curve (one point per run, in the order
run) and the fleet the rates mean. The terminal shows the plan before the first step, one line per
run as it ends, and at the session's end the same entries as :func:`terminal_lines`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_certload.capacity import CapacityPlan, CapacityResult, StepRun, fmt_rate
from pytest_certload.report.summary import stack_caveat
from pytest_certload.report.table import render_table


def plan_lines(name: str, plan: CapacityPlan) -> list[str]:
    """What the search may do, said before it does any of it: the bounds on rate and time."""
    if plan.confirm > 1:
        confirm = f"a run near the boundary counts once {plan.confirm} agree, at most {2 * plan.confirm - 1}"
    else:
        confirm = "no repeats"
    return [
        f"capacity search {name}: {fmt_rate(plan.start)} x{plan.factor:g} up to at most "
        f"{fmt_rate(plan.max_rate)}, then bisect to {plan.resolution:.0%}; steps of {plan.step_s:g}s "
        f"({confirm}); at most {plan.max_runs} runs in at most {plan.budget_s:g}s "
        "(graceful stops and cool-downs included)"
    ]


def result_lines(result: CapacityResult) -> list[str]:
    """The search's outcome, as the test ends: the interval and the fleet it means."""
    lines = [f"capacity {result.name}: {result.describe()}"]
    if result.fleet is not None:
        lines.append(f"  fleet: {result.fleet.to_dict(result.holds, result.fails)['text']}")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cells(run: Mapping[str, Any]) -> list[str]:
    stats = run.get("stats") or {}
    error = stats.get("error_rate")
    served = stats.get("served_per_s")
    return [
        str(run["index"]),
        run["stage"],
        f"{run['rate']:.4g}",
        "-" if served is None else f"{served:.4g}",
        _ms(stats.get("p50_ms")),
        _ms(stats.get("p95_ms")),
        _ms(stats.get("p99_ms")),
        "-" if error is None else f"{error * 100:.2f}%",
        "generator saturated" if run["saturated"] else ("held" if run["passed"] else "failed"),
        run["counted"],
    ]


CURVE_HEADERS = [
    "run",
    "stage",
    "rate/s",
    "served/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "errors",
    "result",
    "counted as",
]


def run_line(run: StepRun) -> str:
    """One run as it ends: ``capacity run 3 (ramp) 120/s: failed p95 41.0 ms ... -- <why>``."""
    data = run.to_dict()
    cells = _cells(data)
    why = f" -- {run.reasons[0]}" if run.reasons else ""
    return (
        f"capacity run {cells[0]} ({cells[1]}) {fmt_rate(run.rate)}: {cells[8]}, served {cells[3]}/s, "
        f"p50 {cells[4]} ms, p95 {cells[5]} ms, p99 {cells[6]} ms, errors {cells[7]}{why}"
    )


def summary_entry(result: CapacityResult, test: str, stack: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary's ``capacity[]`` entry of one search (JSON-safe)."""
    return {
        "test": test,
        **result.to_dict(),
        "target": (stack or {}).get("target"),
        "caveat": stack_caveat(dict(stack) if stack else None),
    }


def entry_lines(entry: Mapping[str, Any]) -> list[str]:
    """One search: the interval, the fleet it means, the curve, and what it cannot say."""
    lines = [f"{entry['scenario']} ({entry['test']}): {entry['text']}"]
    if entry.get("fleet"):
        lines.append(f"  fleet: {entry['fleet']['text']}")
    if entry.get("caveat"):
        lines.append(f"  {entry['caveat']}")
    plan = entry["plan"]
    lines.append(
        f"  {len(entry['curve'])} runs of {plan['step_s']:g}s, {entry['spent_s']:.0f}s of "
        f"{plan['budget_s']:g}s budget; status {entry['status']}"
    )
    lines += ["  " + line for line in render_table(CURVE_HEADERS, [_cells(r) for r in entry["curve"]])]
    return lines


def terminal_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The session's capacity section: every search's entry."""
    out: list[str] = []
    for entry in entries:
        out += entry_lines(entry)
    return out


def announce(config: Any, lines: Sequence[str]) -> None:
    """Write lines to the terminal now, mid-test, with pytest's capture suspended (no-op without one:
    an xdist worker has no terminal; its search reaches the controller's summary instead)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not lines:
        return
    capman = config.pluginmanager.get_plugin("capturemanager")
    suspend = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with suspend:
        reporter.ensure_newline()
        for line in lines:
            reporter.write_line(line)
