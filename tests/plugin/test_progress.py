"""Live progress: the line, the redraw on a terminal, when it shows, and a real phase driving it."""

from __future__ import annotations

import re
import textwrap
from array import array
from pathlib import Path
from types import SimpleNamespace

import calibration  # tests/plugin/calibration.py
import numpy as np
import pytest

from pytest_certload.engine import ExecutorSpec, ScenarioRun, run_phase
from pytest_certload.report.progress import P95Tracker, ProgressDisplay, progress_enabled, progress_line
from pytest_certload.stats.timeline import TimelineRecorder

pytest_plugins = ["pytester"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def test_the_line_reads_as_k6s():
    line = progress_line("agent_storm", 12.3, 30.0, 49.8, 50.0, None, 12.34, (3, 600), 2)
    assert (
        line == "agent_storm [======>         ] 12s/30s  49.8/50.0 it/s  p95 12.3ms  err 0.50% (3)  dropped 2"
    )
    closed = progress_line("vus", 200.0, 300.0, 80.0, None, 8, None, (0, 0), 0)
    assert "3m20s/5m00s  80.0 it/s (8 VUs)  p95 -  err -  dropped 0" in closed
    assert progress_line("done", 31, 30, 1, 1, None, 1, (0, 1), 0).startswith(
        "done [================] 30s/30s"
    )
    assert len(progress_line("x" * 200, 1, 2, 1, 1, None, 1, (0, 1), 0, width=80)) == 79  # never wraps


def test_p95_tracker_reads_tails_and_stays_within_its_bucket_width():
    values = array("q", (np.random.default_rng(2).lognormal(np.log(8e6), 0.7, 5000)).astype(np.int64))
    tracker = P95Tracker()
    assert tracker.quantile_ms() is None
    first = array("q", values[:3000])
    tracker.update({"a": first})
    first.extend(values[3000:])  # the same array grew: only the new tail is read
    tracker.update({"a": first})
    exact = np.percentile(np.frombuffer(values, dtype=np.int64) / 1e6, 95)
    assert tracker.quantile_ms(0.95) == pytest.approx(exact, rel=0.03)


def _run(name: str, duration: float = 4.0, start: float = 0.0):
    spec = ExecutorSpec.from_options(
        {
            "executor": "constant-arrival-rate",
            "rate": 10,
            "duration": duration,
            "pre_allocated_vus": 1,
            "start_offset": start,
        }
    )
    return ScenarioRun(name, spec, None)


def test_the_display_redraws_in_place_and_erases_itself():
    out: list[str] = []
    display = ProgressDisplay(out.append, [_run("create"), _run("list_all")], start_column=22)
    timeline = TimelineRecorder()
    trends = {("http_req_duration", (("scenario", "create"),)): array("q", [5_000_000] * 10)}
    tags = (("scenario", "create"),)
    for second in (1, 2):
        counters = {
            ("started_iterations", tags): 10.0 * second,
            ("scheduled_iterations", tags): 10.0 * second,
        }
        timeline.mark(float(second), trends, counters, {("http_req_failed", tags): (1, 10 * second)}, 0.1)
        display(float(second), timeline, trends, False)
    first, second = out
    assert first.startswith("\n") and second.startswith("\r\x1b[1A")  # two lines: up one, rewrite both
    lines = [ANSI.sub("", x) for x in second[len("\r\x1b[1A") :].split("\n")]
    assert (
        lines[0].startswith("create   [====") and "10.0/10.0 it/s" in lines[0] and "err 5.00% (1)" in lines[0]
    )
    assert lines[1].startswith("list_all [====") and "p95 -" in lines[1]
    display(3.0, timeline, trends, True)  # the end: lines erased, cursor back on pytest's line, column 23
    assert out[-1] == "\r\x1b[1A\x1b[J\x1b[1A\x1b[23G" and display.frames == 2
    display.close()
    assert len(out) == 3  # closing twice writes nothing more


def _config(mode="auto", tty=True, verbosity=0, worker=False, reporter=True):
    term = SimpleNamespace(isatty=lambda: tty)
    config = SimpleNamespace(
        getoption=lambda name, default=None: {"certload_progress": mode, "certload_list": False}.get(
            name, default
        ),
        pluginmanager=SimpleNamespace(get_plugin=lambda name: term if reporter else None),
        get_verbosity=lambda: verbosity,
    )
    if worker:
        config.workerinput = {}
    return config


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({}, True),
        ({"tty": False}, False),
        ({"verbosity": -1}, False),  # -q
        ({"worker": True}, False),
        ({"worker": True, "mode": "on"}, False),  # never on an xdist worker
        ({"mode": "off"}, False),
        ({"mode": "on", "tty": False}, True),
        ({"reporter": False}, False),  # -p no:terminal
    ],
)
def test_when_progress_shows(kwargs, shown):
    assert progress_enabled(_config(**kwargs)) is shown


def test_a_real_phase_calls_the_display_every_second(tmp_path: Path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from calibration import start_server

    proc, url = start_server(tmp_path)
    try:

        async def iteration(ctx):
            await ctx.request("GET", url + "/fast")

        out: list[str] = []
        run = ScenarioRun(
            "fast",
            ExecutorSpec.from_options(
                {"executor": "constant-arrival-rate", "rate": 50, "duration": "2.5s", "pre_allocated_vus": 5}
            ),
            iteration,
        )
        display = ProgressDisplay(out.append, [run])
        run_phase([run], progress=display, max_lag_p99_ms=1000, max_cpu_fraction=8)
    finally:
        proc.stop()
    assert display.frames == 2  # at 1 s and 2 s; the end erases
    text = ANSI.sub("", out[1])
    assert re.search(
        r"fast \[=+>? *\] 2\.\ds/2\.5s  (\d+\.\d)/\1 it/s  p95 \d+\.\dms  err 0\.00% \(0\)  dropped 0", text
    ), text
    assert out[-1].startswith("\r\x1b[J")


LOAD = textwrap.dedent(
    """
    import pytest

    @pytest.mark.certload(executor="constant-arrival-rate", rate=20, duration="2.2s", pre_allocated_vus=2)
    def test_load(certload):
        async def iteration(ctx):
            pass
        certload.run(iteration, name="quiet")
    """
)


def test_forced_progress_reaches_pytests_output_and_auto_stays_quiet_in_a_pipe(pytester: pytest.Pytester):
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_load=LOAD)
    forced = pytester.runpytest_subprocess("--certload-progress=on")
    forced.assert_outcomes(passed=1)
    assert re.search(r"quiet \[=+>? *\] \d\.\ds/2\.2s  (\d+\.\d)/\1 it/s", forced.stdout.str())
    quiet = pytester.runpytest_subprocess()  # stdout is a pipe here: no progress
    quiet.assert_outcomes(passed=1)
    assert "it/s" not in quiet.stdout.str().split("certload ===")[0]
