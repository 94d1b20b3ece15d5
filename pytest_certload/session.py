"""The session's side of load testing: what it keeps, the summary it writes, the tables it prints.

One :class:`SessionState` per pytest process collects every judged phase (:class:`PhaseVerdict`).
On a pytest-xdist controller the workers' verdicts arrive attached to their test reports and are
adopted here, so the controller writes the one summary. The summary is written at session end,
also after failures and on KeyboardInterrupt (marked ``interrupted``).

The stash keys other modules share live here too, so no module has to import the plugin.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import pytest

from pytest_certload.report import outputs as report_outputs
from pytest_certload.report.capacity import terminal_lines as capacity_lines
from pytest_certload.report.machine import describe_machine
from pytest_certload.report.summary import build_summary
from pytest_certload.report.table import render_table, summary_lines
from pytest_certload.report.writer import write_json_atomic
from pytest_certload.scenario_options import ScenarioOptions
from pytest_certload.verdict import PhaseVerdict

#: how a saturated generator's report begins (runner.GeneratorSaturated, xdist's merged report)
SATURATED_PREFIX = "GeneratorSaturated:"

#: pytest's own markers, left out of --certload-list's marker column
PYTEST_MARKERS = {"parametrize", "usefixtures", "filterwarnings", "skip", "skipif", "xfail"}


@dataclass
class SessionState:
    """Everything this process keeps for the session summary."""

    summary_path: str | None
    started: float = field(default_factory=time.monotonic)
    phases: dict[str, PhaseVerdict] = field(default_factory=dict)
    stack: dict[str, Any] | None = None
    interrupted: bool = False
    summary: dict[str, Any] | None = None
    outputs_written: bool = False  # HTML, saved run, baseline page: once per session
    capacity: list[dict[str, Any]] = field(default_factory=list)  # capacity searches' summary entries

    def add(self, phase: PhaseVerdict) -> None:
        self.phases.setdefault(phase.id, phase)
        if phase.stack is not None and self.stack is None:
            self.stack = phase.stack


STATE = pytest.StashKey[SessionState]()
#: an item's parsed certload marker (None: the item has no marker)
OPTIONS = pytest.StashKey[ScenarioOptions | None]()
#: judged phases of an item not yet sent to the xdist controller
PENDING = pytest.StashKey[list[PhaseVerdict]]()
#: --certload-duration in seconds (None: every scenario keeps its own)
DURATION = pytest.StashKey[float | None]()
#: generator saturation bounds from the ini file (run_phase keyword arguments)
HEALTH_BOUNDS = pytest.StashKey[dict[str, float]]()
#: capacity searches of an item not yet sent to the xdist controller (summary entries)
CAPACITY_PENDING = pytest.StashKey[list[dict[str, Any]]]()


def is_worker(config: pytest.Config) -> bool:
    """Is this process a pytest-xdist worker?"""
    return hasattr(config, "workerinput")


def keep_capacity(config: pytest.Config, item: pytest.Item, entry: dict[str, Any]) -> None:
    """A capacity search's summary entry: kept for this process's summary; on an xdist worker it
    also travels to the controller with the test's report (plugin.pytest_runtest_makereport)."""
    config.stash[STATE].capacity.append(entry)
    if is_worker(config):
        item.stash.setdefault(CAPACITY_PENDING, []).append(entry)


def health_bounds(config: pytest.Config) -> dict[str, float]:
    """run_phase keyword arguments for the saturation bounds set in the ini file (or with -o)."""
    bounds = {}
    for ini, kwarg in (
        ("certload_max_lag_p99_ms", "max_lag_p99_ms"),
        ("certload_max_cpu_fraction", "max_cpu_fraction"),
        ("certload_max_queue_p99_ms", "max_queue_p99_ms"),
    ):
        raw = config.getini(ini)
        if raw in (None, ""):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise pytest.UsageError(f"{ini} = {raw!r}: give a positive number (e.g. {ini} = 20)")
        bounds[kwarg] = value
    return bounds


def list_lines(items: list[pytest.Item]) -> list[str]:
    """The --certload-list table: one row per collected load scenario."""
    rows = []
    for item in items:
        options = item.stash.get(OPTIONS, None)
        if options is None:
            continue
        markers = sorted({m.name for m in item.iter_markers()} - PYTEST_MARKERS)
        spec = options.spec
        by_key: dict[str, list[str]] = {}
        for t in options.thresholds:
            by_key.setdefault(str(t.key), []).append(t.expression)
        thresholds = "; ".join(f"{key}: {', '.join(exprs)}" for key, exprs in by_key.items()) or "-"
        rows.append(
            [
                item.nodeid,
                ",".join(markers),
                spec.executor if spec else "(run_many)",
                options.describe_rate(),
                f"{spec.total_duration:g}s" if spec else "-",
                thresholds,
                ",".join(options.fleets) or "-",
            ]
        )
    header = ["test", "markers", "executor", "rate", "duration", "thresholds", "fleets"]
    return [f"certload scenarios: {len(rows)}", *render_table(header, rows)]


def saturation_failures_to_errors(path: str) -> int:
    """Rewrite a JUnit XML file so generator saturation is an ``<error>``, not a ``<failure>``.

    pytest's junitxml calls every failed call phase a failure; the terminal shows these as ERROR
    (pytest_report_teststatus), and a CI dashboard should agree: the numbers are not the server's.
    """
    try:
        tree = ElementTree.parse(path)
    except (OSError, ElementTree.ParseError):
        return 0
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            for failure in case.findall("failure"):
                if failure.get("message", "").startswith(SATURATED_PREFIX):
                    failure.tag = "error"
                    changed += 1
                    suite.set("failures", str(int(suite.get("failures", "1")) - 1))
                    suite.set("errors", str(int(suite.get("errors", "0")) + 1))
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed


class SessionPlugin:
    """The per-session hooks (one instance per pytest config, registered at configure)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.state = config.stash[STATE]

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.state.started = time.monotonic()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """--certload-list: print the scenario table instead of running anything."""
        if not self.config.getoption("certload_list"):
            return None
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            return None  # let pytest report the collection errors
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in list_lines(session.items):
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line)
        return True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the xdist controller: adopt the judged phases a worker attached to its report."""
        capacity = getattr(report, "certload_capacity", None)
        if capacity and not is_worker(self.config):  # a worker's capacity searches (one report per test)
            self.state.capacity += [e for e in capacity if e not in self.state.capacity]
        phases = getattr(report, "certload_phases", None)
        if not phases or is_worker(self.config):
            return
        for data in phases:
            if data["id"] not in self.state.phases:
                self.state.add(PhaseVerdict.from_dict(data))
        report.certload_phases = None  # the samples live in the state now; reports are kept all session

    def write_summary(self, exitstatus: int | None) -> None:
        state = self.state
        wanted = report_outputs.wanted(self.config)  # --certload-html, -save, -baseline-md, -compare
        if is_worker(self.config) or not (state.phases or state.summary_path or wanted):
            return
        state.summary = build_summary(
            list(state.phases.values()),
            run_duration_s=time.monotonic() - state.started,
            machine=describe_machine(),
            stack=state.stack,
            interrupted=state.interrupted,
            exit_status=exitstatus,
            stdout_tty=sys.stdout.isatty(),
            duration_override_s=self.config.stash[DURATION],
        )
        if state.capacity:  # capacity searches: interval, curve, fleet (report/capacity.py)
            state.summary["capacity"] = list(state.capacity)
        if state.summary_path:
            write_json_atomic(state.summary_path, state.summary)
        if not state.outputs_written:  # after Ctrl-C, sessionfinish only refreshes the summary's exit status
            state.outputs_written = True
            report_outputs.write_outputs(
                self.config, state.summary, list(state.phases.values()), state.interrupted
            )

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.state.interrupted = True
        self.write_summary(None)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.state.interrupted = True
        self.write_summary(int(exitstatus))

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """After pytest's junitxml wrote its file: a saturated generator is an error there too."""
        xmlpath = getattr(config.option, "xmlpath", None)
        if xmlpath and not is_worker(config):
            saturation_failures_to_errors(xmlpath)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if state.summary is not None and state.phases:
            terminalreporter.section("certload")
            for line in summary_lines(state.summary):
                terminalreporter.write_line(line)
            if state.summary_path:
                terminalreporter.write_line(f"summary written to {state.summary_path}")
        if state.capacity:  # capacity searches: interval, fleet, curve (report/capacity.py)
            terminalreporter.section("certload capacity")
            for line in capacity_lines(state.capacity):
                terminalreporter.write_line(line)
        report_outputs.terminal_summary(self.config, terminalreporter)  # comparison, files written
