"""Executors by k6 name; a new executor is one new module registered here."""

from __future__ import annotations

from pytest_certload.engine.executors.agent_fleet import AgentFleetExecutor
from pytest_certload.engine.executors.arrival import ArrivalRateExecutor
from pytest_certload.engine.executors.base import Executor, graceful_stop, iteration_counts
from pytest_certload.engine.executors.constant_vus import ConstantVusExecutor
from pytest_certload.engine.scenario import ScenarioRuntime

EXECUTOR_TYPES = {
    "constant-arrival-rate": ArrivalRateExecutor,
    "ramping-arrival-rate": ArrivalRateExecutor,
    "constant-vus": ConstantVusExecutor,
    "agent-fleet": AgentFleetExecutor,
}


def make_executor(runtime: ScenarioRuntime) -> Executor:
    return EXECUTOR_TYPES[runtime.spec.executor](runtime)


__all__ = [
    "EXECUTOR_TYPES",
    "AgentFleetExecutor",
    "ArrivalRateExecutor",
    "ConstantVusExecutor",
    "Executor",
    "graceful_stop",
    "iteration_counts",
    "make_executor",
]
