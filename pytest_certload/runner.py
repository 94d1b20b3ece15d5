"""The ``certload`` fixture's object: run a test's load phase, judge it, hand back the result.

One call of ``run`` / ``run_many`` is one *phase*: the scenarios' executors run concurrently in the
engine (:func:`pytest_certload.engine.run_phase`), the thresholds are judged on the recorded samples
(:class:`~pytest_certload.verdict.PhaseVerdict`), the session keeps the verdict for the summary, and
the test gets a view of it (:mod:`pytest_certload.results`). Thresholds are evaluated, not asserted:
the test decides (``result.assert_thresholds()``).

A generator that saturated makes the phase's numbers describe the generator, not the server, so it
raises :class:`GeneratorSaturated` (reported as an ERROR, not a failure).
"""

from __future__ import annotations

import contextlib
import ssl
import warnings
from collections.abc import Mapping
from typing import Any

import pytest

from pytest_certload.report.progress import live_progress
from pytest_certload.report.summary import scenario_seconds
from pytest_certload.results import RunManyResult, ScenarioResult
from pytest_certload.scenario_options import (
    EXECUTOR_KEYS,
    ScenarioOptionError,
    ScenarioOptions,
    marker_options,
    parse_scenario_options,
    scenario_name,
)
from pytest_certload.serverside import attach_block, sample_phase
from pytest_certload.session import DURATION, HEALTH_BOUNDS, OPTIONS, PENDING, STATE, is_worker
from pytest_certload.split import SPLIT_ITEM, SPLITTER, Share, share_runs
from pytest_certload.thresholds import ThresholdSet, abort_check, breach_message, evaluate
from pytest_certload.verdict import SPLIT_META_KEY, PhaseVerdict, ScenarioVerdict


class GeneratorSaturated(Exception):
    """The load generator, not the server, was the bottleneck: the phase's numbers are not valid."""


class UnassertedThresholds(pytest.PytestWarning):
    """A phase breached thresholds and the test never looked at its verdicts."""


def lag_bound_for(thresholds: ThresholdSet, bounds: dict[str, float]) -> dict[str, float]:
    """The saturation bounds for one phase: the ini's, else lag and queue bounds scaled to the thresholds.

    Event-loop lag adds at most its own size to a measured latency, so a verdict against a limit L
    cannot move by more than the generator's lag. The phase is judged sound while lag p99 stays
    under 10 % of its tightest latency threshold (never under the engine's 10 ms floor): a 300 ms
    ACME limit tolerates 30 ms of generator lag, a 5 ms limit still only 10 ms. ``client_queue_time``
    (a request waiting for the generator: late start, a handshake queued behind others) adds to a
    latency the same way, so its bound is the lag bound, never under the engine's 20 ms floor.
    """
    from pytest_certload.engine.health import MAX_LAG_P99_MS, MAX_QUEUE_P99_MS

    out = dict(bounds)
    if "max_lag_p99_ms" not in out:
        limits = [
            t.limit
            for t in thresholds
            if t.aggregation not in ("rate", "count")
            and t.op in ("<", "<=")
            and t.limit > 0
            and t.metric_type in (None, "trend")
        ]
        if limits:
            out["max_lag_p99_ms"] = max(MAX_LAG_P99_MS, 0.1 * min(limits))
    if "max_queue_p99_ms" not in out and "max_lag_p99_ms" in out:
        out["max_queue_p99_ms"] = max(MAX_QUEUE_P99_MS, out["max_lag_p99_ms"])
    return out


#: what one phase runs: scenario name -> (iteration, parsed options, extra tags)
Scenarios = Mapping[str, tuple[Any, ScenarioOptions, dict[str, str]]]


class Certload:
    """The ``certload`` fixture: runs the test's load phase and returns its verdicts."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._item = request.node
        self._config = request.config
        self.phases: list[PhaseVerdict] = []  # as judged here (under xdist: this worker's shares)
        self.results: list[PhaseVerdict] = []  # what the test got back (under xdist: merged phases)
        self._phase_count = 0  # phases run by this test so far (a split phase's barrier is keyed by it)
        self._judged_here = True

    @property
    def options(self) -> ScenarioOptions | None:
        """The test's parsed certload marker (None when it has none)."""
        return self._item.stash.get(OPTIONS, None)

    @property
    def split(self) -> bool:
        """Does this process run only a share of each phase (a pytest-xdist worker in split mode)?"""
        return SPLITTER in self._config.stash and self._item.stash.get(SPLIT_ITEM, False)

    def ssl_context(self, stack: Any | None = None) -> ssl.SSLContext:
        """Verification against the stack's CA (``stack``, else ``certload_stack`` when the test uses it);
        else the system's."""
        from pytest_certload.engine.http import make_ssl_context

        if self._config.getoption("certload_insecure"):
            return make_ssl_context(insecure=True)
        stack = stack if stack is not None else self._stack()
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
        stack: Any | None = None,
    ) -> ScenarioResult:
        """Run the marker's scenario with ``iteration``; thresholds are evaluated, not asserted.

        ``stack``: the stack this phase loads when it is not ``certload_stack`` (a
        ``certload_stack_variant``), so the phase's labels and server-side figures describe that one.
        """
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
        phase = self._run_phase({name: (iteration, options, extra)}, ThresholdSet(), ssl_context, stack)
        return ScenarioResult(phase, name)

    def run_many(
        self,
        scenarios: Mapping[str, tuple[Any, Mapping[str, Any]]],
        *,
        ssl_context: ssl.SSLContext | None = None,
        stack: Any | None = None,
    ) -> RunManyResult:
        """Run several scenarios concurrently, each with its own marker-like options and thresholds.

        The test's own certload marker, if any, supplies defaults (e.g. ``duration``) and its
        thresholds apply to the whole phase, as k6's top-level ``thresholds`` do. ``stack`` as in
        :meth:`run`.
        """
        base = marker_options(self._item) or {}
        base_executor = {k: v for k, v in base.items() if k in EXECUTOR_KEYS}
        override = self._config.stash[DURATION]
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
        phase = self._run_phase(parsed, phase_thresholds, ssl_context, stack)
        return RunManyResult(phase)

    # --- capacity search (pytest_certload/capacity/: the search; report/capacity.py: its output) ---------
    def capacity(
        self,
        iteration: Any,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        fleet: Any | None = None,
        ssl_context: ssl.SSLContext | None = None,
        stack: Any | None = None,
        **overrides: Any,
    ) -> Any:
        """Search the highest rate at which the marker's thresholds hold; returns a CapacityResult.

        The marker's ``capacity={...}`` (or ``capacity=True``) makes the test a capacity search: its
        ``rate`` is the first step, its ``duration`` each step's length; keyword arguments override
        its capacity options (``max_rate``, ``factor``, ``resolution``, ``confirm``, ``budget``, ...).
        Each step is one ordinary phase (``_run_phase``: under xdist split and merged, and the merged
        verdict decides). ``fleet`` (``capacity.agent_heartbeats()``, ...) puts the rates in fleet
        terms. Raises GeneratorSaturated when the generator, not the server, ended the search before
        any step failed.
        """
        import time

        from pytest_certload import capacity as cap
        from pytest_certload.report.capacity import (
            announce,
            plan_lines,
            result_lines,
            run_line,
            summary_entry,
        )
        from pytest_certload.session import keep_capacity

        options = self.options
        if options is None or options.capacity is None:
            pytest.fail(
                f"{self._item.nodeid}: certload.capacity needs @pytest.mark.certload(executor="
                "'constant-arrival-rate', rate=<first step>, duration=<step>, ..., capacity={...})",
                pytrace=False,
            )
        try:
            plan = options.capacity.updated(overrides) if overrides else options.capacity
            cap.check_vu_headroom(plan, options.spec.max_vus)
        except cap.CapacityOptionError as exc:
            raise ScenarioOptionError(str(exc)) from None
        name = name or scenario_name(self._item)
        extra = {str(k): str(v) for k, v in (tags or {}).items()}
        if "scenario" in extra:
            raise ScenarioOptionError("capacity(tags=...) may not set 'scenario': pass name= instead")
        phases: list[PhaseVerdict] = []

        def step(rate: float, index: int) -> Any:
            scenario, step_options = cap.step_options(options, plan, name, rate, index)
            try:
                phase = self._run_phase(
                    {scenario: (iteration, step_options, extra)}, ThresholdSet(), ssl_context, stack
                )
            except GeneratorSaturated:
                phase = self.results[-1]
            phase.inspected = True  # the search judged it
            phases.append(phase)
            return cap.judge_step(phase, scenario, rate, plan)

        announce(self._config, plan_lines(name, plan))  # the bounds on rate and time, before any step
        result = cap.search(
            plan,
            step,
            name=name,
            fleet=fleet,
            pause=time.sleep,
            on_run=lambda run: announce(self._config, [run_line(run)]),
        )
        entry = summary_entry(result, self._item.nodeid, phases[-1].stack if phases else None)
        keep_capacity(self._config, self._item, entry)
        announce(self._config, result_lines(result))
        if result.status == "generator_saturated" and result.fails is None:
            raise GeneratorSaturated(f"capacity {name}: {result.describe()}")
        return result

    # -------------------------------------------------------------------------------------------------------

    def _run_phase(
        self,
        scenarios: Scenarios,
        phase_thresholds: ThresholdSet,
        ssl_context: ssl.SSLContext | None,
        stack: Any | None = None,
    ) -> PhaseVerdict:
        from pytest_certload.engine import ScenarioRun, run_phase

        stack = stack if stack is not None else self._stack()
        if stack is not None:  # never load a deployment the plugin did not start, unless allowed
            from pytest_certload.stack.plugin import require_owned_or_allowed

            require_owned_or_allowed(stack, self._config)
        ctx = ssl_context if ssl_context is not None else self.ssl_context(stack)
        scoped = {name: opts.thresholds.scoped(name) for name, (_, opts, _) in scenarios.items()}
        runs = [
            ScenarioRun(name, opts.spec, iteration, {**opts.tags, **extra})
            for name, (iteration, opts, extra) in scenarios.items()
        ]
        every = ThresholdSet(tuple(t for ts in scoped.values() for t in ts) + tuple(phase_thresholds))
        self._phase_count += 1
        refuse_without_fds(runs, self._item.nodeid, split=self.split)
        share = None
        if self.split:  # wait for every worker, then run this worker's share from the common start
            share = self._config.stash[SPLITTER].join(self._item.nodeid, self._phase_count)
            runs = share_runs(runs, share)
        check = abort_check(every)
        server = sample_phase(stack, share)  # certctl, PostgreSQL, the machine: share 0 only
        try:
            with live_progress(self._config, runs) as progress:  # one updating line per scenario
                measurement = run_phase(
                    runs,
                    ssl_context=ctx,
                    **lag_bound_for(every, self._config.stash[HEALTH_BOUNDS]),
                    **({"abort_check": check} if check is not None else {}),
                    **({"start_at": share.start_at} if share is not None else {}),
                    **({"progress": progress} if progress is not None else {}),
                )
        except BaseException as exc:  # Ctrl-C / SIGTERM mid-phase: the summary still gets what ran
            partial = getattr(exc, "certload_measurement", None)
            attach_block(server, getattr(partial, "samples", None))
            if partial is not None:
                with contextlib.suppress(Exception):  # never let judging replace the interruption
                    self._keep(self._judge(partial, scenarios, scoped, phase_thresholds, share, stack))
            raise
        attach_block(server, measurement.samples)  # derived metrics are judged from it
        phase = self._keep(self._judge(measurement, scenarios, scoped, phase_thresholds, share, stack))
        if share is not None:  # the test body sees the whole phase: every worker's share, merged
            phase = self._config.stash[SPLITTER].merge(self._item.nodeid, self._phase_count, phase)
            self._judged_here = share.index == 0  # one worker speaks for the phase (warnings)
        self.results.append(phase)
        if phase.saturated:
            raise GeneratorSaturated(
                f"the load generator, not the server, was the bottleneck ({phase.saturation_reason}); "
                "this phase's latencies describe the generator. Lower the rate, give the generator a core "
                "of its own, or split the load with pytest-xdist."
            )
        return phase

    def _judge(
        self,
        measurement: Any,
        scenarios: Scenarios,
        scoped: Mapping[str, ThresholdSet],
        phase_thresholds: ThresholdSet,
        share: Share | None,
        stack: Any | None,
    ) -> PhaseVerdict:
        """The thresholds judged on what the engine measured."""
        samples = measurement.samples
        if share is not None:
            samples.meta[SPLIT_META_KEY] = share.to_meta()
        duration_s = float(samples.meta["wall_seconds"])
        judged = [
            ScenarioVerdict(
                name=name,
                options={k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.raw.items()},
                executor=opts.spec.executor,
                target_rate_per_s=opts.target_rate_per_s,
                target_vus=opts.spec.vus or None,
                verdicts=evaluate(
                    scoped[name],
                    samples,
                    scenario_seconds(
                        samples, name, opts.spec.start_offset, duration_s, opts.spec.total_duration
                    ),
                ),
                start_offset_s=opts.spec.start_offset,
                scheduled_s=opts.spec.total_duration,
            )
            for name, (_, opts, _) in scenarios.items()
        ]
        health = measurement.health
        return PhaseVerdict(
            nodeid=self._item.nodeid,
            samples=samples,
            duration_s=duration_s,
            scenarios=judged,
            phase_verdicts=evaluate(phase_thresholds, samples, duration_s),
            health=health.to_dict(),
            saturated=health.saturated,
            saturation_reason=health.reason,
            aborted=measurement.aborted or None,
            interrupted=measurement.interrupted,
            stack=stack.describe() if stack is not None else None,
        )

    def _keep(self, phase: PhaseVerdict) -> PhaseVerdict:
        """The session summary gets every judged phase (under xdist each worker's share, with the
        test's report: the controller merges them once more for the summary)."""
        self._config.stash[STATE].add(phase)
        self.phases.append(phase)
        if is_worker(self._config):
            self._item.stash.setdefault(PENDING, []).append(phase)
        return phase

    def warn_unasserted(self) -> None:
        """At teardown: a phase that breached thresholds the test never looked at is worth a warning."""
        if not self._judged_here:
            return  # split across xdist workers: the first share's worker warns for all
        for phase in self.results:
            if not phase.ok and not phase.inspected and not phase.saturated:
                warnings.warn(
                    f"{self._item.nodeid}: thresholds breached but never checked -- call "
                    f"result.assert_thresholds() (or assert result.ok, result.breach_message()):\n"
                    + breach_message(phase.verdicts),
                    UnassertedThresholds,
                    stacklevel=1,
                )


def refuse_without_fds(runs: list[Any], nodeid: str, *, split: bool) -> None:
    """An agent fleet needs a socket per agent: raise the soft fd limit, or fail before the phase.

    Under a split each worker holds only its share, so there only the raising is done (a refusal in
    one worker would leave the others waiting at the barrier).
    """
    from pytest_certload.engine.fdlimit import ensure_headroom, phase_connections

    needed = phase_connections(runs)
    if needed == 0:
        return
    problem = ensure_headroom(needed).problem()
    if problem is not None and not split:
        pytest.fail(f"{nodeid}: {problem}", pytrace=False)
