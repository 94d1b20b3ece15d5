"""One self-contained HTML file for a session (or a saved run): open it offline, send it by mail.

plotly.js is embedded once in the page (``plotly.offline.get_plotlyjs()``, ~4.8 MB): no CDN, no
fetch, no font download; every figure is a ``Plotly.newPlot`` call on inline data. Plotly rather than
static SVG because a load report is read by hovering (which second did p99 jump, by how much) and
zooming one time range across every row at once.

The page: what was measured on (the stack, with the stand-in's caveat where it answered; PostgreSQL's
profile; the machine; the command line), one row per scenario, the comparison with a baseline when
there was one, then per phase its thresholds (observed, limit, count), generator health and the
figures of :mod:`.figures`.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_certload.report.compare import Row, fmt
from pytest_certload.report.summary import stack_caveat
from pytest_certload.verdict import PhaseVerdict

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #222; }
h1 { margin: 20px 0 4px; font-size: 26px; } h2 { margin-top: 36px; border-bottom: 2px solid #ddd;
     padding-bottom: 4px; font-size: 19px; word-break: break-all; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: #666; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.caveat { background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 12px; margin: 8px 0; }
.warn { background: #ffebe9; border: 1px solid #cf222e; padding: 8px 12px; margin: 8px 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 14px; }
.facts dt { color: #555; } .facts dd { margin: 0; }
.plot { margin: 8px 0 20px; } code { font-size: 12px; }
#overview td:nth-child(2), #overview td:nth-child(4) { white-space: nowrap; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td class=num>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(items: Sequence[tuple[str, Any]]) -> str:
    return "<dl class=facts>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items if v) + "</dl>"


def setup_section(summary: dict[str, Any], info: dict[str, Any]) -> str:
    stack = summary.get("stack") or {}
    machine = summary.get("machine") or info.get("machine") or {}
    caveat = stack_caveat(stack)
    out = ["<section id=setup><h2>What was measured on</h2>"]
    if caveat:
        out.append(
            f"<div class=caveat><b>{_e(caveat)}.</b> The certctl stand-in answered these requests.</div>"
        )
    if stack.get("fallback_reason"):
        out.append(
            f"<div class=caveat>certctl=auto fell back to the stand-in: {_e(stack['fallback_reason'])}</div>"
        )
    memory = machine.get("memory_bytes")
    override = (summary.get("options") or {}).get("durationOverrideSeconds")
    commit = info.get("commit") or {}
    out.append(
        _facts(
            [
                ("target", _e(stack.get("target") or "no certload_stack (the tests' own servers)")),
                ("certctl source", _e(stack.get("certctl_source"))),
                ("stack provider", _e(stack.get("provider"))),
                ("PostgreSQL", _e(stack.get("postgres") or "not started by pytest-certload")),
                (
                    "generator machine",
                    _e(
                        f"{machine.get('cpu_model') or '?'}; "
                        f"{machine.get('cpu_count_usable') or '?'} usable CPUs"
                        + (f"; {memory / 2**30:.1f} GiB" if memory else "")
                        + f"; {machine.get('os') or ''}; Python {machine.get('python') or '?'}"
                        + ("; in a container" if machine.get("in_container") else "")
                    ),
                ),
                ("command", f"<code>{_e(' '.join(info.get('argv') or []))}</code>"),
                (
                    "duration override",
                    _e(f"every phase {override:g} s (--certload-duration)" if override else ""),
                ),
                (
                    "commit",
                    _e(
                        f"{commit.get('sha')} ({commit.get('branch')})"
                        + (" with uncommitted changes" if commit.get("dirty") else "")
                    )
                    if commit
                    else "",
                ),
                ("run", _e(info.get("name"))),
                ("created", _e(f"{info.get('created')} UTC" if info.get("created") else "")),
                (
                    "session",
                    _e(
                        f"{summary.get('state', {}).get('testRunDurationMs', 0) / 1000:.1f} s"
                        + (", interrupted" if summary.get("state", {}).get("interrupted") else "")
                    ),
                ),
            ]
        )
    )
    out.append("</section>")
    return "".join(out)


def _verdict_cell(verdicts: Sequence[dict[str, Any]]) -> str:
    if not verdicts:
        return "none"
    failed = sum(not v["ok"] for v in verdicts)
    if failed:
        return f"<span class=fail>FAIL {failed}/{len(verdicts)}</span>"
    return f"<span class=ok>ok {len(verdicts)}/{len(verdicts)}</span>"


def overview_section(summary: dict[str, Any]) -> str:
    rows = []
    for key, s in (summary.get("scenarios") or {}).items():
        name = key.removesuffix(f" ({s.get('test')})")  # the summary's key for a name used twice
        d = s.get("http_req_duration") or {}
        target = s.get("target_rate_per_s")
        rate = _num(s.get("achieved_rate_per_s"), 1) + (f" / {target:.3g}" if target else "")
        flags = [f for f in ("saturated", "aborted", "interrupted") if s.get(f)]
        rows.append(
            [
                f"<b>{_e(name)}</b><br><code>{_e(s.get('test'))}</code>",
                _e(s.get("executor")),
                _num(s.get("requests")),
                rate,
                _num(d.get("med")),
                _num(d.get("p(95)")),
                _num(d.get("p(99)")),
                _num(d.get("max")),
                _num(None if s.get("error_rate") is None else s["error_rate"] * 100, 2, "%"),
                _num(s.get("dropped_iterations")),
                _verdict_cell(s.get("thresholds") or [])
                + ("".join(f"<br><span class=fail>{_e(f)}</span>" for f in flags)),
            ]
        )
    headers = [
        "scenario",
        "executor",
        "requests",
        "iter/s (target)",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "dropped",
        "thresholds",
    ]
    return "<section id=overview><h2>Scenarios</h2>" + _table(headers, rows, range(2, 10)) + "</section>"


def comparison_section(label: str, rows: Sequence[Row], warnings: Sequence[str]) -> str:
    out = [f"<section id=comparison><h2>Compared with {_e(label)}</h2>"]
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        out.append(
            "<div class=warn><b>Different setups: these numbers may not be comparable.</b>"
            f"<ul>{items}</ul></div>"
        )
    body = []
    tests_of: dict[str, set[str]] = {}
    for r in rows:
        tests_of.setdefault(r.scenario, set()).add(r.test)
    for r in rows:
        css = "fail" if r.regression else ("ok" if r.significant and not r.worse else "")
        body.append(
            [
                _e(
                    r.scenario
                    if len(tests_of[r.scenario]) == 1
                    else f"{r.scenario} ({r.test.rsplit('::', 1)[-1]})"
                ),
                _e(r.metric),
                _e(fmt(r.base, r.unit)),
                _e(fmt(r.now, r.unit)),
                _e(r.change_text()),
                _e(r.ci_text("")),
                f"<span class='{css}'>{_e(r.status)}</span>",
            ]
        )
    out.append(_table(["scenario", "metric", "baseline", "now", "change", "95 % interval", "verdict"], body))
    out.append("</section>")
    return "".join(out)


def _threshold_rows(phase: PhaseVerdict) -> list[list[str]]:
    rows = []
    tagged = [(s.name, v) for s in phase.scenarios for v in s.verdicts] + [
        ("(phase)", v) for v in phase.phase_verdicts
    ]
    for scenario, v in tagged:
        observed = "n/a" if v.observed is None else f"{v.observed:.4g}{v.unit}"
        status = "<span class=ok>ok</span>" if v.ok else "<span class=fail>FAIL</span>"
        rows.append(
            [
                _e(scenario),
                f"<code>{_e(v.metric_key)}</code>",
                f"<code>{_e(v.expression)}</code>",
                _e(observed),
                _e(f"{v.limit:.4g}{v.unit}"),
                _e(v.count),
                status + (f" {_e(v.reason)}" if v.reason else ""),
            ]
        )
    return rows


def server_section(phase: PhaseVerdict) -> str:
    """certctl, PostgreSQL and the machine over the phase: figures per request, the bottleneck, the
    statements that took the most time (pytest_certload/serverside/)."""
    from plotly.io import to_html

    from pytest_certload.report.figures import server_figure
    from pytest_certload.serverside.summary import detail_lines, phase_block

    entry = phase_block(phase)
    if entry is None:
        return "<h3>Server side</h3><p class=sub>Not sampled (the test used no certload_stack).</p>"
    out = ["<h3>Server side</h3><ul>", *(f"<li>{_e(line)}</li>" for line in detail_lines(entry)), "</ul>"]
    top = ((entry["raw"].get("database") or {}).get("statements") or {}).get("top") or []
    if top:
        rows = [
            [f"<code>{_e(q['query'])}</code>", _e(q["calls"]), _num(q["exec_ms"]), _e(q["rows"])] for q in top
        ]
        out.append(_table(["statement (normalised)", "calls", "exec ms", "rows"], rows, (1, 2, 3)))
    figure = server_figure(phase)
    if figure is not None:
        config = {"displaylogo": False, "responsive": True}
        plot = to_html(figure, full_html=False, include_plotlyjs=False, config=config)
        out.append(f"<div class=plot>{plot}</div>")
    return "".join(out)


def fleet_section(phase: PhaseVerdict) -> str:
    """The phase's agent fleets (report/fleet.py): size, connections held from both ends, the
    renewal drain -- the terminal's lines; nothing for a phase without an agent-fleet scenario."""
    from pytest_certload.report.fleet import phase_fleet_lines

    lines = phase_fleet_lines(phase)
    if not lines:
        return ""
    items = "".join(f"<li>{_e(line.strip())}</li>" for line in lines)
    return f"<h3>Agent fleet</h3><ul class=fleet>{items}</ul>"


def phase_section(index: int, phase: PhaseVerdict) -> str:
    from plotly.io import to_html

    from pytest_certload.report.figures import spectrum_figure, timeline_figure

    h = phase.health or {}
    out = [f"<section class=phase id=phase-{index}><h2>{_e(phase.nodeid)}{_e(phase.merged_note)}</h2>"]
    for flag, text in (
        ("saturated", phase.saturation_reason),
        ("aborted", phase.aborted),
        ("interrupted", phase.interrupted),
    ):
        if getattr(phase, flag):
            out.append(f"<div class=warn><b>{flag}</b>: {_e(text)}</div>")
    options = "; ".join(
        f"{s.name}: {json.dumps({k: v for k, v in s.options.items() if k != 'thresholds'})}"
        for s in phase.scenarios
    )
    out.append(
        _facts(
            [
                ("duration", _e(f"{phase.duration_s:.1f} s")),
                ("scenarios", f"<code>{_e(options)}</code>"),
                (
                    "generator",
                    _e(
                        f"event-loop lag p50 {h.get('lag_p50_ms', 0):.2f} / "
                        f"p99 {h.get('lag_p99_ms', 0):.2f} / max {h.get('lag_max_ms', 0):.2f} ms; "
                        f"CPU {h.get('cpu_fraction', 0) * 100:.0f} % of a core"
                    ),
                ),
            ]
        )
    )
    out.append(server_section(phase))
    out.append(fleet_section(phase))
    rows = _threshold_rows(phase)
    if rows:
        out.append(
            "<h3>Thresholds</h3>"
            + _table(
                ["scenario", "metric", "threshold", "observed", "limit", "count", "verdict"], rows, (3, 4, 5)
            )
        )
    config = {"displaylogo": False, "responsive": True}
    timeline = timeline_figure(phase)
    if timeline is not None:
        out.append(
            "<h3>Over time</h3><div class=plot>"
            + to_html(
                timeline, full_html=False, include_plotlyjs=False, config=config, div_id=f"timeline-{index}"
            )
            + "</div>"
        )
    else:
        out.append("<p class=sub>No per-second data for this phase (recorded without per-second marks).</p>")
    out.append(
        "<h3>Percentile spectrum</h3><div class=plot>"
        + to_html(
            spectrum_figure(phase),
            full_html=False,
            include_plotlyjs=False,
            config=config,
            div_id=f"spectrum-{index}",
        )
        + "</div>"
    )
    out.append("</section>")
    return "".join(out)


def render_html(
    summary: dict[str, Any],
    phases: Sequence[PhaseVerdict],
    info: dict[str, Any],
    comparison: tuple[str, Sequence[Row], Sequence[str]] | None = None,
) -> str:
    """The whole page as one string."""
    from plotly.offline import get_plotlyjs

    title = f"pytest-certload report{' — ' + info['name'] if info.get('name') else ''}"
    target = (summary.get("stack") or {}).get("target") or "no certload_stack"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{_e(title)}</title>",
        f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>",
        f"<h1>{_e(title)}</h1><p class=sub>{_e(target)} · {len(phases)} phase(s) · "
        f"generated {_e(info.get('created'))} UTC</p>",
        setup_section(summary, info),
        overview_section(summary),
    ]
    if comparison is not None:
        parts.append(comparison_section(*comparison))
    parts += [phase_section(i, phase) for i, phase in enumerate(phases, start=1)]
    if not phases:
        parts.append("<p>No load phase ran in this session.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: str | os.PathLike[str], text: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
