"""pytest glue for load phases: options, the ``certload`` marker and fixture, summary and table.

The work happens elsewhere: :mod:`.scenario_options` (the marker's k6 options),
:mod:`.thresholds` (grammar, verdicts), :mod:`.engine` (running a phase), :mod:`.stats` (results),
:mod:`.report` (summary JSON, tables), :mod:`.distributed` (pytest-xdist). This module only wires
them into pytest's life cycle:

- collection: every ``@pytest.mark.certload(...)`` is parsed (executor options and thresholds);
  a bad value is a collection error naming the test and the fix, before anything starts;
- ``certload.run(iteration)`` runs the marker's phase, evaluates its thresholds and records it;
- results reach the session summary locally, or from pytest-xdist workers as report attributes
  (``PhaseRecord.to_dict`` / ``PhaseResult.to_dict``), so the controller writes the one summary;
- the summary is written at session end, also after failures and on KeyboardInterrupt.
"""

from __future__ import annotations

import math
import ssl
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_certload.report.machine import describe_machine
from pytest_certload.report.records import PhaseRecord, PhaseResults, ScenarioInfo, ScenarioResult
from pytest_certload.report.summary import build_summary, scenario_seconds
from pytest_certload.report.table import render_table, summary_lines
from pytest_certload.report.writer import write_json_atomic
from pytest_certload.scenario_options import (
    EXECUTOR_KEYS,
    ScenarioOptionError,
    ScenarioOptions,
    marker_options,
    parse_scenario_options,
    scenario_name,
)
from pytest_certload.thresholds import (
    ThresholdSet,
    abort_check,
    breach_message,
    evaluate,
)

MARKERS = {
    "certload": "certload(executor=..., rate=..., time_unit=..., duration=..., vus=..., stages=..., "
    "pre_allocated_vus=..., max_vus=..., graceful_stop=..., thresholds={...}, fleets=[...], tags={...}): "
    "a load scenario with k6's scenario options; run it with the `certload` fixture",
    "api": "certctl API-tier load scenario",
    "connector": "connector-tier load scenario (TLS targets: nginx, apache, haproxy, F5 mock)",
    "scale": "scale-tier load scenario (seeded fleets, bursts, storms)",
    "acme": "ACME load scenario",
}


class GeneratorSaturated(Exception):
    """The load generator, not the server, was the bottleneck: the phase's numbers are not valid."""


class UnassertedThresholds(pytest.PytestWarning):
    """A phase breached thresholds and the test never looked at its verdicts."""


# --- session state ----------------------------------------------------------------------------------


@dataclass
class SessionState:
    """Everything this process keeps for the session summary."""

    summary_path: str | None
    started: float = field(default_factory=time.monotonic)
    records: dict[str, PhaseRecord] = field(default_factory=dict)
    stack: dict[str, Any] | None = None
    interrupted: bool = False
    summary: dict[str, Any] | None = None

    def add(self, record: PhaseRecord) -> None:
        self.records.setdefault(record.id, record)
        if record.stack is not None and self.stack is None:
            self.stack = record.stack


STATE = pytest.StashKey[SessionState]()
OPTIONS = pytest.StashKey[ScenarioOptions | None]()
PENDING = pytest.StashKey[list[PhaseRecord]]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _duration_override(config: pytest.Config) -> float | None:
    return config.stash[DURATION]


DURATION = pytest.StashKey[float | None]()
HEALTH_BOUNDS = pytest.StashKey[dict[str, float]]()


def _health_bounds(config: pytest.Config) -> dict[str, float]:
    """run_phase keyword arguments for the saturation bounds set in the ini file (or with -o)."""
    bounds = {}
    for ini, kwarg in (
        ("certload_max_lag_p99_ms", "max_lag_p99_ms"),
        ("certload_max_cpu_fraction", "max_cpu_fraction"),
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


def lag_bound_for(thresholds: ThresholdSet, bounds: dict[str, float]) -> dict[str, float]:
    """The saturation bounds for one phase: the ini's, else a lag bound scaled to the thresholds.

    Event-loop lag adds at most its own size to a measured latency, so a verdict against a limit L
    cannot move by more than the generator's lag. The phase is judged sound while lag p99 stays
    under 10 % of its tightest latency threshold (never under the engine's 10 ms floor): a 300 ms
    ACME limit tolerates 30 ms of generator lag, a 5 ms limit still only 10 ms.
    """
    if "max_lag_p99_ms" in bounds:
        return bounds
    from pytest_certload.engine.health import MAX_LAG_P99_MS

    limits = [
        t.limit
        for t in thresholds
        if t.aggregation not in ("rate", "count")
        and t.op in ("<", "<=")
        and t.limit > 0
        and t.metric_type in (None, "trend")
    ]
    if not limits:
        return bounds
    return {**bounds, "max_lag_p99_ms": max(MAX_LAG_P99_MS, 0.1 * min(limits))}


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
    group.addoption(
        "--certload-insecure",
        action="store_true",
        default=False,
        help="do not verify TLS certificates of certctl and the targets (debugging only; never the default)",
    )
    # --- pytest-xdist split mode (pytest_certload.distributed) ---
    from pytest_certload import distributed

    distributed.add_options(group)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}" if name != "certload" else text)
    duration = config.getoption("certload_duration")
    if duration is not None:
        from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

        try:
            config.stash[DURATION] = parse_duration(duration, "--certload-duration")
        except ExecutorOptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    else:
        config.stash[DURATION] = None
    config.stash[HEALTH_BOUNDS] = _health_bounds(config)
    config.stash[STATE] = SessionState(config.getoption("certload_summary"))
    if config.getoption("certload_list"):
        config.option.dist = "no"  # listing runs nothing: keep pytest-xdist from starting workers
        config.option.tx = []
    config.pluginmanager.register(SessionPlugin(config), f"certload-session-{id(config)}")
    # --- pytest-xdist split mode (pytest_certload.distributed): on a controller or worker ---
    if _is_worker(config) or (config.pluginmanager.hasplugin("xdist") and getattr(config.option, "tx", None)):
        from pytest_certload.distributed import DistributedPlugin

        config.pluginmanager.register(DistributedPlugin(config), f"certload-distributed-{id(config)}")


def _validate(item: pytest.Item) -> None:
    """Parse the item's certload marker once; raise ScenarioOptionError naming the test."""
    if OPTIONS in item.stash:
        return
    try:
        options = marker_options(item)
        item.stash[OPTIONS] = (
            None if options is None else parse_scenario_options(options, _duration_override(item.config))
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


def list_lines(items: list[pytest.Item]) -> list[str]:
    """The --certload-list table: one row per collected load scenario."""
    rows = []
    for item in items:
        options = item.stash.get(OPTIONS, None)
        if options is None:
            continue
        markers = sorted({m.name for m in item.iter_markers() if m.name in MARKERS})
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    pending = item.stash.get(PENDING, [])
    if pending and _is_worker(item.config):
        report.certload_records = [r.to_dict() for r in pending]  # travels to the xdist controller
        pending.clear()
    if call.excinfo is not None and call.excinfo.errisinstance(GeneratorSaturated):
        report.certload_saturated = True
        report.longrepr = f"GeneratorSaturated: {call.excinfo.value}"
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "certload_saturated", False) and report.when == "call":
        return "error", "E", ("ERROR", {"red": True})
    return None


class SessionPlugin:
    """The per-session half of the glue (one instance per pytest config, registered at configure)."""

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
        """On the xdist controller: adopt the phase records a worker attached to its report."""
        records = getattr(report, "certload_records", None)
        if not records or _is_worker(self.config):
            return
        for data in records:
            if data["id"] not in self.state.records:
                self.state.add(PhaseRecord.from_dict(data))
        report.certload_records = None  # the samples live in the state now; reports are kept all session

    def write_summary(self, exitstatus: int | None) -> None:
        state = self.state
        if _is_worker(self.config) or not (state.records or state.summary_path):
            return
        state.summary = build_summary(
            list(state.records.values()),
            run_duration_s=time.monotonic() - state.started,
            machine=describe_machine(),
            stack=state.stack,
            interrupted=state.interrupted,
            exit_status=exitstatus,
            stdout_tty=sys.stdout.isatty(),
            duration_override_s=_duration_override(self.config),
        )
        if state.summary_path:
            write_json_atomic(state.summary_path, state.summary)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.state.interrupted = True
        self.write_summary(None)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            self.state.interrupted = True
        self.write_summary(int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state
        if state.summary is None or not state.records:
            return
        terminalreporter.section("certload")
        for line in summary_lines(state.summary):
            terminalreporter.write_line(line)
        if state.summary_path:
            terminalreporter.write_line(f"summary written to {state.summary_path}")


# --- the fixture ------------------------------------------------------------------------------------


class Certload:
    """The ``certload`` fixture: runs the test's load phase and returns its verdicts."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._item = request.node
        self._config = request.config
        self.records: list[PhaseRecord] = []
        self._phases = 0  # phases run by this test so far (split mode keys its barrier by them)

    @property
    def options(self) -> ScenarioOptions | None:
        """The test's parsed certload marker (None when it has none)."""
        return self._item.stash.get(OPTIONS, None)

    def ssl_context(self) -> ssl.SSLContext:
        """Verification against the stack's CA when the test uses ``certload_stack``; else the system's."""
        from pytest_certload.engine.http import make_ssl_context

        if self._config.getoption("certload_insecure"):
            return make_ssl_context(insecure=True)
        stack = self._stack()
        return make_ssl_context(getattr(stack, "ca_bundle", None))

    def _stack(self) -> Any | None:
        if "certload_stack" not in self._request.fixturenames:
            return None
        return self._request.getfixturevalue("certload_stack")

    def run(
        self,
        iteration: Any,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> ScenarioResult:
        """Run the marker's scenario with ``iteration``; thresholds are evaluated, not asserted."""
        options = self.options
        if options is None or options.spec is None:
            pytest.fail(
                f"{self._item.nodeid}: certload.run needs @pytest.mark.certload(executor=..., ...)",
                pytrace=False,
            )
        name = name or scenario_name(self._item)
        extra = {str(k): str(v) for k, v in (tags or {}).items()}
        if "scenario" in extra:
            raise ScenarioOptionError("run(tags=...) may not set 'scenario': pass name= instead")
        record = self._run_phase({name: (iteration, options, extra)}, ThresholdSet(), ssl_context)
        if self._split():  # --- pytest-xdist split mode: the controller judges the merged data ---
            from pytest_certload.distributed import DeferredScenarioResult

            return DeferredScenarioResult(record, name)
        return ScenarioResult(record, name)

    def run_many(
        self,
        scenarios: Mapping[str, tuple[Any, Mapping[str, Any]]],
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> PhaseResults:
        """Run several scenarios concurrently, each with its own marker-like options and thresholds.

        The test's own certload marker, if any, supplies defaults (e.g. ``duration``) and its
        thresholds apply to the whole phase, as k6's top-level ``thresholds`` do.
        """
        base = marker_options(self._item) or {}
        base_executor = {k: v for k, v in base.items() if k in EXECUTOR_KEYS}
        override = _duration_override(self._config)
        parsed = {}
        for scenario, entry in scenarios.items():
            if not (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[1], Mapping)):
                raise ScenarioOptionError(f"run_many[{scenario!r}] must be (iteration, options_dict)")
            iteration, own = entry
            try:
                own_tags = own.get("tags", {})
                tags = {**base.get("tags", {}), **own_tags} if isinstance(own_tags, Mapping) else own_tags
                merged = {**base_executor, **own, "tags": tags}
                parsed[scenario] = (
                    iteration,
                    parse_scenario_options(merged, override, require_executor=True),
                    {},
                )
            except ScenarioOptionError as exc:
                raise ScenarioOptionError(f"run_many scenario {scenario!r}: {exc}") from None
        phase_thresholds = self.options.thresholds if self.options else ThresholdSet()
        record = self._run_phase(parsed, phase_thresholds, ssl_context)
        if self._split():  # --- pytest-xdist split mode: the controller judges the merged data ---
            from pytest_certload.distributed import DeferredPhaseResults

            return DeferredPhaseResults(record)
        return PhaseResults(record)

    def _split(self) -> bool:
        """Is this a pytest-xdist worker running its share of every load phase?"""
        if not _is_worker(self._config):
            return False
        from pytest_certload.distributed import split_mode

        return split_mode(self._config)

    def _run_phase(
        self,
        scenarios: Mapping[str, tuple[Any, ScenarioOptions, dict[str, str]]],
        phase_thresholds: ThresholdSet,
        ssl_context: ssl.SSLContext | None,
    ) -> PhaseRecord:
        from pytest_certload.engine import ScenarioRun, run_phase

        stack = self._stack()
        if stack is not None:  # never load a deployment the plugin did not start, unless allowed
            from pytest_certload.stack.plugin import require_owned_or_allowed

            require_owned_or_allowed(stack, self._config)
        ctx = ssl_context if ssl_context is not None else self.ssl_context()
        scoped = {name: opts.thresholds.scoped(name) for name, (_, opts, _) in scenarios.items()}
        runs = [
            ScenarioRun(name, opts.spec, iteration, {**opts.tags, **extra})
            for name, (iteration, opts, extra) in scenarios.items()
        ]
        every = ThresholdSet(tuple(t for ts in scoped.values() for t in ts) + tuple(phase_thresholds))
        # --- pytest-xdist split mode: wait for every worker, then run this worker's share ---
        share = None
        self._phases += 1
        if self._split():
            from pytest_certload.distributed import join_phase, share_runs

            share = join_phase(self._config, self._item.nodeid, self._phases)
            runs = share_runs(runs, share)
        started = time.monotonic()
        outcome = run_phase(
            runs,
            ssl_context=ctx,
            **lag_bound_for(every, self._config.stash[HEALTH_BOUNDS]),
            **_abort_kwargs(run_phase, every),
            **({"start_at": share.start_at} if share is not None else {}),
        )
        if share is not None:
            from pytest_certload.distributed import META_KEY

            outcome.result.meta[META_KEY] = share.to_meta()
        duration_s = _phase_duration(outcome, time.monotonic() - started)
        result = outcome.result
        health = outcome.health
        infos = [
            ScenarioInfo(
                name=name,
                options=_json_safe_options(opts.raw),
                executor=opts.spec.executor,
                target_rate_per_s=opts.target_rate_per_s,
                target_vus=opts.spec.vus or None,
                verdicts=evaluate(
                    scoped[name],
                    result,
                    scenario_seconds(
                        result, name, opts.spec.start_offset, duration_s, opts.spec.total_duration
                    ),
                ),
                start_offset_s=opts.spec.start_offset,
                scheduled_s=opts.spec.total_duration,
            )
            for name, (_, opts, _) in scenarios.items()
        ]
        stack = self._stack()
        record = PhaseRecord(
            nodeid=self._item.nodeid,
            result=result,
            duration_s=duration_s,
            scenarios=infos,
            phase_verdicts=evaluate(phase_thresholds, result, duration_s),
            health=_health_dict(health),
            saturated=bool(getattr(health, "saturated", False)),
            saturation_reason=str(getattr(health, "reason", "") or ""),
            aborted=getattr(outcome, "aborted", None) or None,
            stack=stack.describe() if stack is not None and hasattr(stack, "describe") else None,
        )
        self._config.stash[STATE].add(record)
        self.records.append(record)
        if _is_worker(self._config):  # the controller gets it with this test's report
            self._item.stash.setdefault(PENDING, []).append(record)
        if record.saturated:
            raise GeneratorSaturated(
                f"the load generator, not the server, was the bottleneck ({record.saturation_reason}); "
                "this phase's latencies describe the generator. Lower the rate, give the generator a core "
                "of its own, or split the load with pytest-xdist."
            )
        return record


def _abort_kwargs(run_phase: Any, thresholds: ThresholdSet) -> dict[str, Any]:
    """Pass the abortOnFail callback if the engine's run_phase accepts one."""
    check = abort_check(thresholds)
    if check is None:
        return {}
    import inspect

    params = inspect.signature(run_phase).parameters
    for name in ("abort_check", "should_abort", "abort"):
        if name in params:
            return {name: check}
    warnings.warn(
        "abortOnFail thresholds are evaluated at the end of the phase only: this engine's run_phase "
        "takes no abort_check callback",
        pytest.PytestWarning,
        stacklevel=3,
    )
    return {}


def _phase_duration(outcome: Any, measured_s: float) -> float:
    for attr in ("duration_s", "elapsed_s", "wall_seconds"):
        value = getattr(outcome, attr, None)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value)
    meta = getattr(outcome.result, "meta", {}) or {}
    for key in ("duration_s", "wall_seconds"):
        value = meta.get(key)
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return measured_s


def _health_dict(health: Any) -> dict[str, Any]:
    if health is None:
        return {}
    if hasattr(health, "to_dict"):
        return dict(health.to_dict())
    if isinstance(health, Mapping):
        return dict(health)
    return {k: v for k, v in vars(health).items() if not k.startswith("_")}


def _json_safe_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in raw.items()}


@pytest.fixture
def certload(request: pytest.FixtureRequest):
    """Run this test's load phase: ``certload.run(iteration)`` / ``certload.run_many({...})``."""
    runner = Certload(request)
    yield runner
    if runner._split():
        return  # split mode: a worker's verdicts are partial; the controller judges the merged phase
    for record in runner.records:
        if not record.ok and not record.inspected and not record.saturated:
            warnings.warn(
                f"{request.node.nodeid}: thresholds breached but never checked -- call "
                f"result.assert_thresholds() (or assert result.ok, result.breach_message()):\n"
                + breach_message(record.verdicts),
                UnassertedThresholds,
                stacklevel=1,
            )


__all__ = [
    "Certload",
    "GeneratorSaturated",
    "ScenarioOptionError",
    "ScenarioOptions",
    "UnassertedThresholds",
    "parse_scenario_options",
]
