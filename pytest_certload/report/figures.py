"""The HTML report's plots (plotly figures), built from a judged phase's samples and per-second marks.

Per phase, one figure with a shared time axis (zooming one row zooms all; every scenario of a
``run_many`` phase on the same seconds):

- per scenario, p50/p95/p99 of ``http_req_duration`` (solid) and ``http_req_service_time`` (dashed)
  per second; the shaded band between the two p99 lines is coordinated omission made visible: time
  a request waited for the generator or a connection before it was sent;
- iterations started per second against the schedule's target;
- responses per second by status class (stacked);
- per second: failed requests, dropped iterations, late starts;
- the generator: event-loop lag p99/max and process CPU (per xdist worker when split).

And the full percentile spectrum per scenario on a log axis, HdrHistogram-style (p0 ... p99.999).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pytest_certload.stats.timeline import Timeline
from pytest_certload.verdict import PhaseVerdict

QS = (50.0, 95.0, 99.0)
Q_COLOURS = {50.0: "#1f77b4", 95.0: "#ff7f0e", 99.0: "#d62728"}
CLASS_COLOURS = {"2xx": "#2ca02c", "3xx": "#17becf", "4xx": "#ff7f0e", "5xx": "#d62728", "error": "#444444"}
SCENARIO_COLOURS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f")
WORKER_COLOURS = (
    ("#9467bd", "#7f7f7f"),
    ("#e377c2", "#bcbd22"),
    ("#8c564b", "#17becf"),
    ("#1f77b4", "#ff7f0e"),
)
SPECTRUM_TICKS = (1, 10, 100, 1_000, 10_000, 100_000)
SPECTRUM_LABELS = ("p0", "p90", "p99", "p99.9", "p99.99", "p99.999")
LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 70, "r": 30, "t": 60, "b": 40},
    "hovermode": "x unified",
}


def _nan_to_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def timeline_figure(phase: PhaseVerdict) -> go.Figure | None:
    """The phase's per-second figure, or None when its samples carry no per-second marks."""
    timeline = Timeline.of(phase.samples)
    if timeline is None:
        return None
    names = [s.name for s in phase.scenarios]
    titles = [f"{n}: response time per second (ms): duration (solid), service time (dashed)" for n in names]
    titles += [
        "iterations started per second: achieved (solid) vs target (dotted)",
        "responses per second by status class",
        "per second: failed requests (solid), dropped iterations (dash), late starts (dot)",
        "generator: event-loop lag p99 / max (ms, left), CPU (% of a core, right)",
    ]
    rows = len(titles)
    specs: list[list[dict[str, Any]]] = [[{}] for _ in range(rows - 1)] + [[{"secondary_y": True}]]
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.3 / rows,
        subplot_titles=titles,
        row_heights=[1.4] * len(names) + [1.0] * 4,
        specs=specs,
    )

    def add(trace: Any, row: int, secondary: bool = False) -> None:
        trace.legend = "legend" if row == 1 else f"legend{row}"  # a legend next to each row
        fig.add_trace(trace, row=row, col=1, secondary_y=secondary if row == rows else None)

    x = timeline.x
    widths = timeline.widths()

    def line(y: np.ndarray, name: str, colour: str, dash: str = "solid", width: float = 2, **kw: Any) -> Any:
        return go.Scatter(
            x=x,
            y=_nan_to_none(y),
            name=name,
            mode="lines",
            line={"color": colour, "dash": dash, "width": width},
            **kw,
        )

    for row, name in enumerate(names, start=1):
        wanted = {"scenario": name}
        duration = timeline.percentiles("http_req_duration", QS, wanted)
        service = timeline.percentiles("http_req_service_time", QS, wanted)
        for q in QS:
            add(line(service[q], f"service p{q:g}", Q_COLOURS[q], "dash", 1.5), row)
            # the band between service and duration p99: coordinated omission made visible
            band = {"fill": "tonexty", "fillcolor": "rgba(214,39,40,0.12)"} if q == 99.0 else {}
            add(line(duration[q], f"duration p{q:g}", Q_COLOURS[q], **band), row)
        fig.update_yaxes(title_text="ms", rangemode="tozero", row=row, col=1)
    base = len(names)
    for i, info in enumerate(phase.scenarios):
        colour = SCENARIO_COLOURS[i % len(SCENARIO_COLOURS)]
        wanted = {"scenario": info.name}
        add(
            line(timeline.counter("started_iterations", wanted) / widths, f"{info.name} achieved", colour),
            base + 1,
        )
        if info.target_rate_per_s is not None:
            target = timeline.counter("scheduled_iterations", wanted) / widths
            add(line(target, f"{info.name} target", colour, "dot"), base + 1)
        failed, _ = timeline.rate("http_req_failed", wanted)
        add(line(failed, f"{info.name} failed requests", colour), base + 3)
        add(
            line(timeline.counter("dropped_iterations", wanted), f"{info.name} dropped", colour, "dash"),
            base + 3,
        )
        add(
            line(timeline.counter("late_starts", wanted), f"{info.name} late starts", colour, "dot"), base + 3
        )
    for status_class, counts in timeline.counter_by_tag("http_reqs", "status_class").items():
        colour = CLASS_COLOURS.get(status_class, "#7f7f7f")
        add(go.Bar(x=x, y=_nan_to_none(counts / widths), name=status_class, marker_color=colour), base + 2)
    generator = timeline.generator()
    workers = phase.samples.meta.get("workers") or []
    for i, (cpu, p99, worst) in enumerate(
        zip(generator["cpu"], generator["lag_p99_ms"], generator["lag_max_ms"], strict=True)
    ):
        who = "" if len(generator["cpu"]) == 1 else f" {workers[i] if i < len(workers) else i + 1}"
        lag_colour, cpu_colour = WORKER_COLOURS[i % len(WORKER_COLOURS)]
        add(line(p99, f"lag p99{who}", lag_colour), rows)
        add(line(worst, f"lag max{who}", lag_colour, "dot"), rows)
        add(line(cpu * 100, f"CPU %{who}", cpu_colour, width=1.5), rows, secondary=True)
    for row, title in ((base + 1, "it/s"), (base + 2, "req/s"), (base + 3, "per second"), (rows, "lag ms")):
        fig.update_yaxes(title_text=title, rangemode="tozero", row=row, col=1)
    fig.update_yaxes(title_text="CPU %", rangemode="tozero", row=rows, col=1, secondary_y=True)
    fig.update_xaxes(title_text="seconds since the phase started", row=rows, col=1)
    legends = {}
    for row in range(1, rows + 1):
        top = fig.get_subplot(row, 1).yaxis.domain[1]
        legends["legend" if row == 1 else f"legend{row}"] = {
            "y": top,
            "yanchor": "top",
            "x": 1.06 if row == rows else 1.01,
            "xanchor": "left",
            "font": {"size": 11},
            "tracegroupgap": 0,
            "bgcolor": "rgba(255,255,255,0.6)",
        }
    fig.update_layout(**LAYOUT, **legends, barmode="stack", height=230 * len(names) + 170 * 4 + 120)
    fig.update_layout(margin={"r": 190})
    return fig


def spectrum_points(values_ns: np.ndarray) -> tuple[list[float], list[float], list[str]]:
    """(x = 1/(1-q), latency in ms, label) from p0 to as far as the sample count resolves, then max."""
    n = values_ns.size
    if n == 0:
        return [], [], []
    top = min(100_000.0, float(n))
    x = np.unique(
        np.concatenate([np.logspace(0, np.log10(top), 160), [float(t) for t in SPECTRUM_TICKS if t <= top]])
    )
    qs = 100.0 * (1.0 - 1.0 / x)
    ms = np.percentile(values_ns / 1e6, qs)
    labels = [f"p{q:.4g}" for q in qs]
    return [*x.tolist(), top * 1.25], [*ms.tolist(), float(values_ns.max()) / 1e6], [*labels, "max"]


def spectrum_figure(phase: PhaseVerdict) -> go.Figure:
    """Every scenario's percentile spectrum: duration (solid) and service time (dashed)."""
    fig = go.Figure()
    for i, info in enumerate(phase.scenarios):
        colour = SCENARIO_COLOURS[i % len(SCENARIO_COLOURS)]
        for metric, dash in (("http_req_duration", "solid"), ("http_req_service_time", "dash")):
            x, y, labels = spectrum_points(phase.samples.select_trend(metric, {"scenario": info.name}))
            if not x:
                continue
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[round(v, 4) for v in y],
                    text=labels,
                    name=f"{info.name} {metric.removeprefix('http_req_')}",
                    line={"color": colour, "dash": dash, "width": 2},
                    mode="lines",
                    hovertemplate="%{text}: %{y:.2f} ms<extra>%{fullData.name}</extra>",
                )
            )
    fig.update_xaxes(
        type="log", tickvals=list(SPECTRUM_TICKS), ticktext=list(SPECTRUM_LABELS), title_text="percentile"
    )
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    fig.update_layout(
        **{**LAYOUT, "hovermode": "closest"},
        height=380,
        title={
            "text": "percentile spectrum (solid: http_req_duration, dashed: service time)",
            "font": {"size": 14},
        },
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 1.0,
                "y": 1.15,
                "xanchor": "right",
                "buttons": [
                    {"label": "linear ms", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log ms", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                ],
            }
        ],
    )
    return fig


def server_figure(phase: PhaseVerdict) -> go.Figure | None:
    """certctl's resident memory and TCP connections, once a second (pytest_certload/serverside/);
    None when certctl's process was not sampled."""
    from pytest_certload.serverside.derived import MIB, raw_block

    block = raw_block(phase.samples.meta) or {}
    series = (block.get("certctl") or {}).get("series") or {}
    at = series.get("t") or []
    if not at:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    rss = [None if v is None else v / MIB for v in series.get("rss") or []]
    fig.add_trace(go.Scatter(x=at, y=rss, name="certctl RSS (MiB)", line={"color": "#1f77b4"}))
    connections = series.get("connections") or []
    fig.add_trace(
        go.Scatter(x=at, y=connections, name="TCP connections", line={"color": "#ff7f0e"}), secondary_y=True
    )
    fig.update_layout(**LAYOUT, height=300, title="certctl per second: resident memory and connections")
    fig.update_xaxes(title_text="seconds since the phase's sampling began")
    return fig
