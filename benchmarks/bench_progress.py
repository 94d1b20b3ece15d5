"""What the per-second timeline and the live progress display cost the engine, side by side.

One process runs the same phase (constant-vus, 64 VUs, HTTPS keep-alive against a one-worker nginx on
loopback, as ``bench_engine.py``) in three modes, interleaved round after round so a busy neighbour
on a shared machine hits all three alike:

- ``no_timeline``: ``engine.phase.TIMELINE = False`` (no per-second marks: the engine before them);
- ``timeline``: the default (marks once a second, for the HTML report);
- ``timeline+progress``: the default plus the live display, drawing into a pseudo-terminal
  (a reader thread drains it, as a terminal would).

Per mode: client CPU per request (process CPU over the phase / requests; the table shows the median
and the minimum over rounds), requests per second, and the time one mark and one display frame hold
the event loop (measured inside the engine's clock).

    python benchmarks/bench_progress.py [--seconds 4] [--rounds 5]

Writes ``benchmarks/results/progress.json`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODES = ("no_timeline", "timeline", "timeline+progress")
CONCURRENCY = 64


class _Timed:
    """Wraps a callable and keeps how long each call took (ns)."""

    def __init__(self, fn) -> None:
        self.fn, self.ns = fn, []

    def __call__(self, *args, **kwargs):
        began = time.perf_counter_ns()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.ns.append(time.perf_counter_ns() - began)


def one_phase(mode: str, url: str, ca: str, seconds: float, tty_fd: int) -> dict:
    from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase
    from pytest_certload.engine import phase as phase_module
    from pytest_certload.report.progress import ProgressDisplay
    from pytest_certload.stats import timeline as timeline_module

    async def it(ctx):
        await ctx.request("GET", url)

    spec = ExecutorSpec.from_options(
        {"executor": "constant-vus", "vus": CONCURRENCY, "duration": seconds, "graceful_stop": "5s"}
    )
    run = ScenarioRun("bench", spec, it)
    phase_module.TIMELINE = mode != "no_timeline"
    original_mark = timeline_module.TimelineRecorder.mark
    marks = _Timed(original_mark)
    timeline_module.TimelineRecorder.mark = lambda self, *a, **k: marks(self, *a, **k)
    display = None
    try:
        kwargs = {}
        if mode == "timeline+progress":
            display = _Timed(ProgressDisplay(lambda text: os.write(tty_fd, text.encode()), [run]))
            kwargs["progress"] = display
        outcome = run_phase([run], ssl_context=make_ssl_context(ca), **kwargs)
    finally:
        timeline_module.TimelineRecorder.mark = original_mark
        phase_module.TIMELINE = True
    h = outcome.health
    requests = int(outcome.samples.select_counter("http_reqs"))
    cpu_s = h.cpu_fraction * h.wall_seconds
    return {
        "mode": mode,
        "requests": requests,
        "cpu_s": cpu_s,
        "wall_s": h.wall_seconds,
        "cpu_us_per_request": cpu_s / requests * 1e6 if requests else None,
        "requests_per_s": requests / h.wall_seconds,
        "lag_p99_ms": h.lag_p99_ms,
        "marks": len(marks.ns),
        "mark_us_mean": statistics.fmean(marks.ns) / 1e3 if marks.ns else None,
        "mark_us_max": max(marks.ns) / 1e3 if marks.ns else None,
        "frames": len(display.ns) if display else 0,
        "frame_us_mean": statistics.fmean(display.ns) / 1e3 if display and display.ns else None,
        "frame_us_max": max(display.ns) / 1e3 if display and display.ns else None,
    }


def summarise(rows: list[dict]) -> dict:
    out = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        per_request = [r["cpu_us_per_request"] for r in mine if r["cpu_us_per_request"]]
        out[mode] = {
            "rounds": len(mine),
            "cpu_us_per_request_median": statistics.median(per_request),
            "cpu_us_per_request_min": min(per_request),
            "requests_per_s_median": statistics.median(r["requests_per_s"] for r in mine),
            "mark_us_mean": _mean(r["mark_us_mean"] for r in mine),
            "mark_us_max": max((r["mark_us_max"] or 0) for r in mine),
            "frame_us_mean": _mean(r["frame_us_mean"] for r in mine),
            "frame_us_max": max((r["frame_us_max"] or 0) for r in mine),
        }
    base = out["no_timeline"]["cpu_us_per_request_median"]
    for mode in MODES[1:]:
        m = out[mode]["cpu_us_per_request_median"]
        out[mode]["vs_no_timeline_percent"] = (m - base) / base * 100
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from bench_engine import start_nginx

    workdir = Path(tempfile.mkdtemp(prefix="certload-bench-progress-"))
    proc, _http, https_url, ca, _nginx = start_nginx(workdir)
    master, slave = os.openpty()
    drained = threading.Event()

    def drain() -> None:
        while not drained.is_set():
            try:
                os.read(master, 65536)
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    rows = []
    try:
        one_phase("timeline", https_url, ca, 1.0, slave)  # warm-up: imports, TLS session, first loop
        for round_ in range(args.rounds):
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                row = one_phase(mode, https_url, ca, args.seconds, slave)
                row["round"] = round_
                rows.append(row)
                print(
                    f"round {round_} {mode:18} {row['cpu_us_per_request']:.1f} us/request "
                    f"{row['requests_per_s']:.0f} req/s",
                    file=sys.stderr,
                )
    finally:
        drained.set()
        os.close(slave)
        os.close(master)
        proc.stop()
    report = {
        "benchmark": "per-second timeline and live progress: engine client CPU per request, "
        f"constant-vus {CONCURRENCY} VUs, HTTPS keep-alive to one nginx worker on loopback",
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "summary": summarise(rows),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "progress.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
