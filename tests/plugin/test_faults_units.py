"""The fault package's logic without a stack: recovery figures, the injector contract, the driver."""

from __future__ import annotations

import asyncio

import pytest

from pytest_certload.engine import ScenarioRun, run_phase
from pytest_certload.faults import FaultWatch, Injector, PostgresSlow, fault_failure, fault_scenario
from pytest_certload.faults.watch import NS, Outcome
from pytest_certload.scenario_options import parse_scenario_options
from pytest_certload.stack.secret import DsnSecret

MS = 1_000_000


def outcome(at_s: float, ms: float, ok: bool = True, kind: str = "ok") -> Outcome:
    end = round(at_s * NS)
    return Outcome(end - round(ms * MS), end, ok, kind)


def test_recovery_is_the_first_of_two_healthy_windows():
    watch = FaultWatch(p95_limit_ms=100)
    # window 0: refused; window 1: answers but slow; windows 2, 3, 4: healthy
    watch.outcomes += [
        outcome(0.2, 1, False, "connection_refused"),
        outcome(0.6, 1, False, "connection_refused"),
    ]
    watch.outcomes += [outcome(1.5, 500)]
    watch.outcomes += [outcome(s + 0.5, 10) for s in (2, 3, 4)]
    assert watch.recovery_time(0, 5 * NS) == 2.0
    assert watch.errors_by_kind(0, 2 * NS) == {"connection_refused": 2}


def test_a_window_with_one_failure_or_no_answer_is_not_healthy():
    watch = FaultWatch(p95_limit_ms=100, stable_windows=2)
    watch.outcomes += [outcome(0.5, 10), outcome(1.5, 10, False, "timeout"), outcome(2.5, 10)]
    # window 3 has nothing: the load never showed two healthy windows in a row
    assert watch.recovery_time(0, 4 * NS) is None
    watch.outcomes.append(outcome(3.5, 10))
    assert watch.recovery_time(0, 4 * NS) == 2.0


def test_an_unnoticed_fault_recovers_at_once_and_windows_scale():
    watch = FaultWatch(p95_limit_ms=100, window_s=0.25)
    watch.outcomes += [outcome(0.1 + 0.25 * i, 5) for i in range(8)]
    assert watch.recovery_time(0, 2 * NS) == 0.0


def test_first_success_counts_only_requests_sent_after_the_fault():
    watch = FaultWatch(p95_limit_ms=100)
    fault = 1 * NS
    watch.outcomes.append(Outcome(fault - 10 * MS, fault + 5 * MS, True, "ok"))  # sent before
    watch.outcomes.append(Outcome(fault + 100 * MS, fault + 400 * MS, True, "ok"))
    assert watch.first_success_after(fault) == pytest.approx(0.4)


def test_first_success_starts_counting_at_the_first_failure():
    """A graceful shutdown still serves what it accepted: that is not the service coming back."""
    watch = FaultWatch(p95_limit_ms=100)
    fault = 1 * NS
    watch.outcomes.append(Outcome(fault + 1 * MS, fault + 3 * MS, True, "ok"))  # served while stopping
    watch.outcomes.append(Outcome(fault + 20 * MS, fault + 21 * MS, False, "connection_refused"))
    watch.outcomes.append(Outcome(fault + 700 * MS, fault + 710 * MS, True, "ok"))
    assert watch.first_success_after(fault) == pytest.approx(0.71)


class Recording(Injector):
    kind = "recording"

    def __init__(self, hold_s: float = 0.0, fail: bool = False) -> None:
        super().__init__(hold_s)
        self.fail, self.undos = fail, 0

    def describe(self) -> str:
        return "records calls"

    def _inject(self) -> None:
        if self.fail:
            raise RuntimeError("could not inject")

    def _undo(self) -> None:
        self.undos += 1


def test_undo_is_idempotent_and_always_runs_on_exit():
    injector = Recording()
    injector.undo()  # nothing injected: nothing undone
    assert injector.undos == 0
    with pytest.raises(KeyError), injector:
        injector.inject()
        raise KeyError("the test failed mid-phase")
    injector.undo()
    assert injector.undos == 1
    assert [e.what for e in injector.events] == ["inject", "injected", "undone"]
    assert injector.report()["kind"] == "recording"


def test_bad_fault_parameters_name_the_problem():
    with pytest.raises(ValueError, match="hold_s"):
        Recording(hold_s=-1)
    with pytest.raises(ValueError, match="inside the 3 s phase"):
        fault_scenario(Recording(), FaultWatch(100), at_s=3, phase_s=3)
    dsn = DsnSecret("postgresql://u:p@127.0.0.1:1/db")
    with pytest.raises(ValueError, match="mode"):
        PostgresSlow(dsn, hold_s=1, mode="crash")
    with pytest.raises(ValueError, match="table"):
        PostgresSlow(dsn, hold_s=1, table="x; DROP TABLE y")


def fault_phase(injector: Injector, watch: FaultWatch):
    """The fault scenario alone in a 0.6 s phase, its options parsed as run_many parses them."""
    iteration, options = fault_scenario(injector, watch, at_s=0.2, phase_s=0.6, settle_s=1)
    spec = parse_scenario_options(options, None, require_executor=True).spec
    assert spec.start_offset == 0.2 and spec.max_iterations == 1
    return run_phase([ScenarioRun("fault", spec, iteration)])


def test_the_driver_records_its_figures_as_metrics_of_the_phase():
    watch = FaultWatch(p95_limit_ms=100, window_s=0.1)
    injector = Recording(hold_s=0.1)
    measurement = fault_phase(injector, watch)
    samples = measurement.samples
    assert fault_failure(samples) is None
    # the load saw nothing (no requests here): no recovery, the counter present at 0
    assert samples.select_rate("fault_recovered", {"fault": "recording"}) == (0, 1)
    assert samples.select_counter("fault_errors", {"scenario": "fault"}) == 0
    assert ("fault_errors", (("fault", "recording"), ("scenario", "fault"))) in samples.counters
    assert samples.select_trend("fault_inject_duration").size == 1
    assert injector.undos == 1
    assert 0.6 <= samples.meta["wall_seconds"] < 1.5


def test_a_failed_injection_is_reported_and_still_undone():
    injector = Recording(fail=True)
    measurement = fault_phase(injector, FaultWatch(p95_limit_ms=100))
    problem = fault_failure(measurement.samples)
    assert problem is not None and "could not inject" in problem
    assert injector.undos == 1


def test_the_watch_gives_requests_a_bounded_timeout():
    seen = {}

    class Ctx:
        async def request(self, method, url, **kwargs):
            seen.update(kwargs)

            class Resp:
                status, error = 0, "timeout"

            return Resp()

    watch = FaultWatch(p95_limit_ms=100, request_timeout=0.5)

    async def iteration(ctx):
        await ctx.request("GET", "http://127.0.0.1:9/", tags={"step": "probe"})

    asyncio.run(watch.wrap(iteration)(Ctx()))
    assert seen["timeout"] == 0.5
    assert [(o.ok, o.kind, o.step) for o in watch.outcomes] == [(False, "timeout", "probe")]
