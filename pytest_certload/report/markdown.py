"""A scale-baseline page in the shape of certctl's ``docs/operator/scale-baseline-<quarter>.md``.

Same table columns (Scenario | Run ID | Date | p50 | p95 | p99 | Error rate | Peak server RSS | Notes)
and the same Methodology headings (Hardware, Software, Metrics captured), filled from one run: a
scenario whose requests carry a ``step`` tag gets a row per step, as certctl's acme-burst rows do
(directory, new-nonce, renewal-info). pytest-certload does not sample the server's memory, so the
RSS column says so rather than inventing a figure. A run on the stand-in says so in every row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pytest_certload import __version__
from pytest_certload.report.junit import verdict_text
from pytest_certload.report.summary import stack_caveat
from pytest_certload.verdict import PhaseVerdict

RSS_NOT_MEASURED = "not measured"


def _ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _step_rows(phases: Sequence[PhaseVerdict], scenario: str) -> list[tuple[str, dict, float | None]]:
    """(step, trend stats, error rate) per ``step`` tag value of one scenario (empty: no steps)."""
    for phase in phases:
        if not any(s.name == scenario for s in phase.scenarios):
            continue
        samples = phase.samples
        steps = sorted(
            {dict(tags).get("step") for (name, tags) in samples.trends if name == "http_req_duration"}
            - {None}
        )
        rows = []
        for step in steps if len(steps) > 1 else []:
            wanted = {"scenario": scenario, "step": step}
            stats = samples.trend_stats("http_req_duration", wanted)
            if not stats["count"]:
                continue
            trues, total = samples.select_rate("http_req_failed", wanted)
            rows.append((str(step), stats, trues / total if total else None))
        return rows
    return []


def scale_baseline_markdown(
    summary: dict[str, Any], phases: Sequence[PhaseVerdict], info: dict[str, Any], run_id: str
) -> str:
    """The whole page for one run."""
    created = str(info.get("created") or "")
    date = created[:10] or "—"
    stack = summary.get("stack") or {}
    caveat = stack_caveat(stack)
    machine = summary.get("machine") or info.get("machine") or {}
    commit = info.get("commit") or {}
    lines = [
        f"# Scale baseline — {date} capture (pytest-certload)",
        "",
        f"> Captured: {created.replace('T', ' ')} UTC; run `{run_id}`; commit "
        f"`{commit.get('short') or 'unknown'}`{' (with uncommitted changes)' if commit.get('dirty') else ''}",
        "",
        "## What this file is",
        "",
        "The load-test baseline of one pytest-certload run, written by `--certload-baseline-md`, in the "
        "shape of certctl's `docs/operator/scale-baseline-*.md`: paste the rows under **Latest capture** "
        "there, or keep this file next to them.",
        "",
    ]
    if caveat:
        lines += [f"**{caveat}.** These rows describe the pytest-certload stand-in, not certctl.", ""]
    lines += [
        "## Latest capture",
        "",
        "| Scenario | Run ID | Date | p50 | p95 | p99 | Error rate | Peak server RSS | Notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in (summary.get("scenarios") or {}).items():
        d = entry.get("http_req_duration") or {}
        achieved, target = entry.get("achieved_rate_per_s"), entry.get("target_rate_per_s")
        rate = "—" if achieved is None else f"{achieved:.1f}"
        rate += f"/{target:g} it/s achieved/target" if target else " it/s achieved"
        notes = [
            rate,
            f"{entry.get('requests', 0)} requests",
            f"thresholds {verdict_text(entry.get('thresholds', []))}",
        ]
        if entry.get("dropped_iterations"):
            notes.append(f"{entry['dropped_iterations']} dropped iterations")
        for flag in ("saturated", "interrupted"):
            if entry.get(flag):
                notes.append(f"{flag}: {entry[flag]}" if isinstance(entry[flag], str) else flag)
        if entry.get("caveat"):
            notes.append(entry["caveat"])
        cells = [
            f"**{name}**",
            f"`{run_id}`",
            date,
            _ms(d.get("med")),
            _ms(d.get("p(95)")),
            _ms(d.get("p(99)")),
        ]
        cells += [_percent(entry.get("error_rate")), RSS_NOT_MEASURED, "; ".join(notes)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        test = entry.get("test")
        plain = name.removesuffix(f" ({test})")  # build_summary keys a repeated name "name (nodeid)"
        for step, stats, error_rate in _step_rows([p for p in phases if p.nodeid == test], plain):
            cells = [
                f"**{name}** {step}",
                f"`{run_id}`",
                date,
                _ms(stats.get("med")),
                _ms(stats.get("p(95)")),
            ]
            cells += [
                _ms(stats.get("p(99)")),
                _percent(error_rate),
                RSS_NOT_MEASURED,
                f"{stats['count']} requests",
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    memory = machine.get("memory_bytes")
    override = (summary.get("options") or {}).get("durationOverrideSeconds")
    lines += [
        "",
        "## Methodology",
        "",
        "### Hardware",
        "",
        f"- **Load generator:** {machine.get('cpu_model') or 'unknown CPU'}, "
        f"{machine.get('cpu_count_usable') or machine.get('cpu_count') or '?'} usable CPUs, "
        + (f"{memory / 2**30:.1f} GiB RAM, " if memory else "")
        + f"{machine.get('os') or ''}{', in a container' if machine.get('in_container') else ''}.",
        f"- **certctl:** {stack.get('target') or 'no certload_stack (the tests supplied their own servers)'}"
        + (f" ({stack['certctl_source']})" if stack.get("certctl_source") else "")
        + (f". {caveat}." if caveat else "."),
        f"- **Postgres:** {stack.get('postgres') or 'not started by pytest-certload'}.",
        "- **Network:** loopback (generator and server on one machine).",
        "",
        "### Software",
        "",
        f"- **pytest-certload:** {__version__}, Python {machine.get('python') or '?'}.",
        f"- **Command:** `{' '.join(info.get('argv') or []) or 'pytest'}`"
        + (f" (every phase's duration set to {override:g} s)" if override else "")
        + ".",
        "",
        "### Metrics captured",
        "",
        "- **p50 / p95 / p99 latency**: `http_req_duration` percentiles, exact over every request; for "
        "arrival-rate executors measured from each iteration's intended start (coordinated omission "
        "corrected).",
        "- **Error rate**: `http_req_failed` (status outside 200-399 or a connection error, unless the "
        "request declared the status expected).",
        "- **Peak server RSS**: not measured by pytest-certload.",
        "- **Acceptance gate**: each scenario's k6 thresholds (Notes: ok N/N, or what failed).",
        "",
    ]
    return "\n".join(lines)
