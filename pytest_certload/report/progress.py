"""Live progress on the terminal while a phase runs: one updating line per scenario, as k6 shows.

``issuance_acceptance [=======>       ] 12s/30s  49.8/50.0 it/s  p95 12.3ms  err 0.00% (0)  dropped 0``

The engine calls the display once a second from its per-second clock (``engine/phase.py``), on the
event loop. What a call costs: the new tail of each scenario's ``http_req_duration`` arrays goes into
a log-bucket histogram (``np.bincount``, ~2 % wide buckets: p95 so far without re-reading the phase),
a few sums over the timeline's latest counts, and one terminal write with pytest's capture suspended
as its live logging does. Above 4,096 new values per second a systematic subsample stands for the
rest, so a frame holds the loop for a bounded time at any request rate; ``benchmarks/bench_progress.py``
measures it against a phase without it.

Shown only where someone watches: on a terminal (TTY), not with ``-q``, not on pytest-xdist workers
(``--certload-progress=on`` forces it, ``off`` silences it). The lines are erased when the phase ends,
and the cursor goes back to where pytest left it, so the usual output reads as without progress.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

BUCKETS_PER_OCTAVE = 32
_BUCKETS = 48 * BUCKETS_PER_OCTAVE  # up to 2**48 ns (~78 hours): any latency we would record
BAR = 16
MAX_TAIL = 4096  # new values per series and frame that go into the p95 histogram


class P95Tracker:
    """p(95) of every value appended so far to some trend arrays, read tail by tail."""

    __slots__ = ("_counts", "_taken")

    def __init__(self) -> None:
        self._counts = np.zeros(_BUCKETS + 1, dtype=np.int64)
        self._taken: dict[Any, int] = {}

    def update(self, arrays: Mapping[Any, Any]) -> None:
        for key, values in arrays.items():
            n, m = self._taken.get(key, 0), len(values)
            if m <= n:
                continue
            # above MAX_TAIL new values, every step-th stands for step values: a display's p95 needs
            # no more, and the loop is held for tens of microseconds whatever the request rate
            step = -(-(m - n) // MAX_TAIL)
            with memoryview(values) as whole:  # released before anything appends again (same loop)
                tail = np.frombuffer(whole, dtype=np.int64, count=m - n, offset=n * 8)[::step].astype(
                    np.float64
                )
            self._taken[key] = m
            idx = np.clip(np.log2(np.maximum(tail, 1.0)) * BUCKETS_PER_OCTAVE, 0, _BUCKETS).astype(np.int64)
            self._counts += np.bincount(idx, minlength=_BUCKETS + 1) * step

    def quantile_ms(self, q: float = 0.95) -> float | None:
        total = int(self._counts.sum())
        if not total:
            return None
        bucket = int(np.searchsorted(np.cumsum(self._counts), math.ceil(q * total)))
        return 2 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE) / 1e6  # the bucket's middle


def _bar(fraction: float) -> str:
    filled = min(BAR, max(0, int(fraction * BAR)))
    head = ">" if filled < BAR else ""
    return "[" + "=" * filled + head + " " * (BAR - filled - len(head)) + "]"


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 10:
        return f"{value:.1f}s"
    return f"{value:.0f}s" if value < 120 else f"{int(value // 60)}m{int(value % 60):02d}s"


def progress_line(
    name: str,
    elapsed_s: float,
    duration_s: float,
    achieved: float | None,
    target: float | None,
    vus: int | None,
    p95_ms: float | None,
    failed: tuple[int, int],
    dropped: float,
    width: int = 120,
) -> str:
    """One scenario's line (cut to ``width`` so it never wraps: a wrapped line breaks the redraw)."""
    fraction = elapsed_s / duration_s if duration_s > 0 else 1.0
    rate = "-" if achieved is None else f"{achieved:.1f}"
    if target:
        rate += f"/{target:.1f} it/s"
    else:
        rate += " it/s" + (f" ({vus} VUs)" if vus else "")
    trues, total = failed
    errors = f"err {trues / total:.2%} ({trues})" if total else "err -"
    p95 = "p95 -" if p95_ms is None else f"p95 {p95_ms:.1f}ms"
    text = (
        f"{name} {_bar(fraction)} {_seconds(min(elapsed_s, duration_s))}/{_seconds(duration_s)}  "
        f"{rate}  {p95}  {errors}  dropped {dropped:g}"
    )
    return text[: max(10, width - 1)]


def _last_second(timeline: Any, name: str, scenario: str) -> float | None:
    """Per second over the last interval between marks (the first one: since time zero)."""
    at = timeline.at
    if not at:
        return None
    since = at[-2] if len(at) >= 2 else 0.0
    if at[-1] <= since:
        return None
    total = 0.0
    for (n, tags), values in timeline.counters.items():
        if n == name and ("scenario", scenario) in tags and values:
            total += values[-1] - (values[-2] if len(values) >= 2 else 0.0)
    return total / (at[-1] - since)


class ProgressDisplay:
    """The lines of one phase; ``__call__`` is the engine's progress callback."""

    def __init__(self, write: Callable[[str], None], scenarios: Sequence[Any], start_column: int = 0) -> None:
        self._write = write
        self._runs = list(scenarios)  # ScenarioRun: name, spec
        self._p95 = {run.name: P95Tracker() for run in self._runs}
        self._start_column = start_column
        self._drawn = 0
        self.frames = 0

    def lines(self, elapsed_s: float, timeline: Any, trends: Mapping[Any, Any], width: int) -> list[str]:
        out = []
        pad = max(len(run.name) for run in self._runs)
        for run in self._runs:
            spec, name = run.spec, run.name
            wanted = ("scenario", name)
            tracker = self._p95[name]
            tracker.update(
                {k: v for k, v in trends.items() if k[0] == "http_req_duration" and wanted in k[1]}
            )
            target = _last_second(timeline, "scheduled_iterations", name) if spec.open_model else None
            out.append(
                progress_line(
                    name.ljust(pad),
                    elapsed_s - spec.start_offset,
                    spec.total_duration,
                    _last_second(timeline, "started_iterations", name),
                    target,
                    spec.vus or None,
                    tracker.quantile_ms(0.95),
                    timeline.latest_rate("http_req_failed", {"scenario": name}),
                    timeline.latest_counter("dropped_iterations", {"scenario": name}),
                    width,
                )
            )
        return out

    def __call__(self, elapsed_s: float, timeline: Any, trends: Mapping[Any, Any], final: bool) -> None:
        if final:
            self.close()
            return
        width = shutil.get_terminal_size((120, 24)).columns
        lines = self.lines(elapsed_s, timeline, trends, width)
        if not self._drawn:
            text = "\n" + "\n".join(lines)
        else:
            text = "\r" + _up(self._drawn - 1) + "\n".join("\x1b[2K" + line for line in lines)
        self._drawn = len(lines)
        self.frames += 1
        self._write(text)

    def close(self) -> None:
        """Erase the lines and put the cursor back where pytest left it."""
        if self._drawn:
            self._write("\r" + _up(self._drawn - 1) + "\x1b[J" + _up(1) + f"\x1b[{self._start_column + 1}G")
            self._drawn = 0


def _up(n: int) -> str:
    return f"\x1b[{n}A" if n > 0 else ""


def progress_enabled(config: Any) -> bool:
    """On a terminal, not with -q, not on an xdist worker; ``--certload-progress`` on/off overrides."""
    mode = config.getoption("certload_progress", "auto")
    if mode == "off" or hasattr(config, "workerinput") or config.getoption("certload_list", False):
        return False
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return False
    if mode == "on":
        return True
    return bool(reporter.isatty()) and config.get_verbosity() >= 0


@contextlib.contextmanager
def live_progress(config: Any, runs: Sequence[Any]) -> Iterator[ProgressDisplay | None]:
    """The engine's progress callback for one phase (None when progress is off); erased at the end."""
    if not progress_enabled(config):
        yield None
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    writer = reporter._tw  # pytest's TerminalWriter: what its own live logging writes to
    # its file, not the writer itself: the writer counts the current line's width (pytest right-aligns
    # "[ 50%]" with it), and the lines drawn here are gone again when the phase ends
    out = getattr(writer, "_file", None)

    def write(text: str) -> None:
        suspend = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with suspend:
            if out is None:
                writer.write(text, flush=True)
            else:
                out.write(text)
                out.flush()

    display = ProgressDisplay(write, runs, start_column=getattr(writer, "width_of_current_line", 0))
    try:
        yield display
    finally:
        display.close()
