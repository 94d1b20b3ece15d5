"""pytest glue: the ``--certload-*`` options, the ``certload`` marker and fixture, report hooks.

Nothing here does the work; each hook hands over to the module that does:

- :mod:`.scenario_options` parses every ``@pytest.mark.certload(...)`` at collection (a bad value is
  a collection error naming the test and the fix, before anything starts);
- :mod:`.runner` is the fixture's object (``certload.run`` / ``run_many``: engine, verdicts, results);
- :mod:`.session` keeps the session's verdicts and writes the summary and the terminal table;
- :mod:`.xdist` adds pytest-xdist scale-out when xdist runs (it imports the core, never the reverse);
- the stack and seeding fixtures are the plugins :mod:`.stack.plugin` and :mod:`.seeding.plugin`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_certload import xdist as xdist_support
from pytest_certload.report import options as report_options
from pytest_certload.report import outputs as report_outputs
from pytest_certload.runner import Certload, GeneratorSaturated
from pytest_certload.scenario_options import ScenarioOptionError, marker_options, parse_scenario_options
from pytest_certload.session import (
    CAPACITY_PENDING,
    DURATION,
    HEALTH_BOUNDS,
    OPTIONS,
    PENDING,
    SATURATED_PREFIX,
    STATE,
    SessionPlugin,
    SessionState,
    health_bounds,
    is_worker,
)

CERTLOAD_MARKER = (
    "certload(executor=..., rate=..., time_unit=..., duration=..., vus=..., stages=..., "
    "pre_allocated_vus=..., max_vus=..., graceful_stop=..., thresholds={...}, fleets=[...], tags={...}): "
    "a load scenario with k6's scenario options; run it with the `certload` fixture"
)

#: the stack and seeding fixtures: loaded with this plugin (one pytest11 entry point)
pytest_plugins = ["pytest_certload.stack.plugin", "pytest_certload.seeding.plugin"]


# --- hooks ------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("certload", "certload load scenarios")
    group.addoption(
        "--certload-duration",
        metavar="DUR",
        default=None,
        help="override every load phase's duration (k6 duration: 2s, 30s, 1m; ramping stages are scaled)",
    )
    group.addoption(
        "--certload-summary", metavar="PATH", default=None, help="write the k6-shaped summary JSON here"
    )
    group.addoption(
        "--certload-list",
        action="store_true",
        default=False,
        help="list the collected load scenarios (executor, rate, duration, thresholds, fleets) and exit",
    )
    parser.addini(
        "certload_max_lag_p99_ms",
        "generator saturation bound: event-loop lag p99 in ms above which a phase is an error "
        "(default: the engine's, 10)",
        default=None,
    )
    parser.addini(
        "certload_max_cpu_fraction",
        "generator saturation bound: process CPU as a fraction of one core (default: the engine's, 0.85)",
        default=None,
    )
    parser.addini(
        "certload_max_queue_p99_ms",
        "generator saturation bound: client_queue_time p99 in ms (requests waiting for the generator "
        "itself) above which a phase is an error (default: the lag bound, at least 20)",
        default=None,
    )
    group.addoption(
        "--certload-insecure",
        action="store_true",
        default=False,
        help="do not verify TLS certificates of certctl and the targets (debugging only; never the default)",
    )
    xdist_support.add_options(group)
    report_options.add_options(group)  # --certload-html, -progress, -save, -compare, -baseline-md


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", CERTLOAD_MARKER)
    warning = rootdir_warning(config)
    if warning is not None:
        config.issue_config_time_warning(pytest.PytestConfigWarning(warning), stacklevel=2)
    duration = config.getoption("certload_duration")
    if duration is not None:
        from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

        try:
            config.stash[DURATION] = parse_duration(duration, "--certload-duration")
        except ExecutorOptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        config.stash[DURATION] = None
    config.stash[HEALTH_BOUNDS] = health_bounds(config)
    config.stash[STATE] = SessionState(config.getoption("certload_summary"))
    report_outputs.configure(config)  # certload reports: a bad --certload-compare-fail is a usage error
    if config.getoption("certload_list"):
        config.option.dist = "no"  # listing runs nothing: keep pytest-xdist from starting workers
        config.option.tx = []
    config.pluginmanager.register(SessionPlugin(config), f"certload-session-{id(config)}")
    xdist_support.register(config)  # on a pytest-xdist controller or worker; nothing otherwise


#: files that hold a pytest configuration, and how to tell they do
CONFIG_FILES = {
    "pytest.ini": None,
    ".pytest.ini": None,
    "pyproject.toml": "[tool.pytest.ini_options]",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}


def suite_config_file(start: Path) -> Path | None:
    """The nearest pytest configuration file at or above ``start`` (what pytest would pick alone)."""
    for folder in (start, *start.parents):
        for name, section in CONFIG_FILES.items():
            path = folder / name
            if path.is_file() and (section is None or section in path.read_text(errors="replace")):
                return path
    return None


def rootdir_warning(config: pytest.Config) -> str | None:
    """Why the rootdir is not the suite's, when a space-separated option value moved it."""
    suite = suite_config_file(config.invocation_params.dir)
    if suite is None or config.inipath == suite or config.rootpath == suite.parent:
        return None
    return (
        f"pytest's rootdir is {config.rootpath}, not {suite.parent} where this suite's configuration "
        f"({suite.name}) is: a value given as '--option VALUE' was probably taken for a test path before "
        "plugins loaded (e.g. '--certctl-bin /path/certctl-server'). Write '--option=VALUE'."
    )


def _validate(item: pytest.Item) -> None:
    """Parse the item's certload marker once; raise ScenarioOptionError naming the test."""
    if OPTIONS in item.stash:
        return
    try:
        options = marker_options(item)
        item.stash[OPTIONS] = (
            None if options is None else parse_scenario_options(options, item.config.stash[DURATION])
        )
    except ScenarioOptionError as exc:
        raise ScenarioOptionError(f"{item.nodeid}: invalid @pytest.mark.certload: {exc}") from None


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object):
    """Validate certload markers as items are made, so a bad one is a collection error of its module."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Item):
            try:
                _validate(item)
            except ScenarioOptionError as exc:
                raise collector.CollectError(str(exc)) from None
    return result


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Catch markers added after item creation (e.g. by other plugins) -- still before anything runs."""
    problems = []
    for item in items:
        try:
            _validate(item)
        except ScenarioOptionError as exc:
            problems.append(str(exc))
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if is_worker(item.config):  # judged phases and capacity searches travel to the xdist controller
        pending, searches = item.stash.get(PENDING, []), item.stash.get(CAPACITY_PENDING, [])
        if pending:
            report.certload_phases = [p.to_dict() for p in pending]
            pending.clear()
        if searches:
            report.certload_capacity = list(searches)
            searches.clear()
    if call.excinfo is not None and call.excinfo.errisinstance(GeneratorSaturated):
        report.certload_saturated = True
        report.longrepr = f"{SATURATED_PREFIX} {call.excinfo.value}"
    report_outputs.after_call_report(item, report)  # JUnit properties, --certload-compare-fail
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "certload_saturated", False) and report.when == "call":
        return "error", "E", ("ERROR", {"red": True})
    return None


@pytest.fixture
def certload(request: pytest.FixtureRequest):
    """Run this test's load phase: ``certload.run(iteration)`` / ``certload.run_many({...})``."""
    runner = Certload(request)
    yield runner
    runner.warn_unasserted()
