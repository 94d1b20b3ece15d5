"""The fault suite's stack and timing: its own stack variant, fault times scaled to the phase.

Every fault test runs on the variant stack ``faults`` (``certload_stack_variant``), never on the
session's shared stack, so a restart or a broken link cannot touch the tests that follow. It is a
native stack (local processes the plugin restarts in place) unless ``--certload-stack=docker`` was
given. Phases are ``--certload-duration`` long when it is given (CI: 3 s), else 40 s; the fault
times, windows and request timeouts are fractions of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_certload.session import DURATION
from pytest_certload.stack.model import Stack
from pytest_certload.stack.plugin import provider_of

DEFAULT_PHASE_S = 40.0


@dataclass(frozen=True)
class FaultPlan:
    """When things happen in a fault test's phase, all scaled to its length."""

    phase_s: float

    def at(self, fraction: float) -> float:
        return round(self.phase_s * fraction, 3)

    @property
    def window_s(self) -> float:
        """Recovery windows: per second on a 12 s or longer phase, shorter on CI's 3 s ones."""
        return min(1.0, self.phase_s / 12)

    @property
    def request_timeout(self) -> float:
        """Per-request timeout: a request into a black hole cannot outlive the phase by much."""
        return min(10.0, max(1.0, self.phase_s / 4))


@pytest.fixture
def fault_plan(pytestconfig: pytest.Config) -> FaultPlan:
    return FaultPlan(pytestconfig.stash[DURATION] or DEFAULT_PHASE_S)


@pytest.fixture
def fault_stack(
    pytestconfig: pytest.Config,
    certload_stack_options: Any,
    certload_stack_variant: Any,
    certload_stack: Stack,
) -> tuple[Stack, Any]:
    """(stack, provider) of the ``faults`` variant; skips where this process cannot restart it.

    ``certload_stack`` is requested for its labels only: the summary and the JUnit properties name
    the target (certctl or the stand-in, with its caveat) from the session's stack, which the
    variant shares every option with but the provider.
    """
    if certload_stack_options.provider == "external":
        pytest.skip("fault scenarios restart components: they need a stack the plugin started")
    if hasattr(pytestconfig, "workerinput"):
        pytest.skip("fault scenarios need the process that owns their stack (run them without -n)")
    kind = "docker" if certload_stack_options.provider == "docker" else "native"
    stack = certload_stack_variant("faults", provider=kind)
    provider = provider_of(pytestconfig, stack)
    if provider is None:
        pytest.skip("the faults stack was started by another process: it cannot be restarted from here")
    return stack, provider


@pytest.fixture
def record(request: pytest.FixtureRequest):
    """``record(name, value)``: a property on the test's report (the JUnit XML keeps it as legacy
    properties; ``record_property`` would warn under this project's xunit2 family)."""

    def add(name: str, value: str) -> None:
        request.node.user_properties.append((name, value))

    return add


@pytest.fixture
def fault_agent_bound(fault_stack: tuple[Stack, Any], certload_seeds_dir: Any):
    """Seed the agent-bound fleet on the faults stack (idempotent, agents Online with a fresh
    heartbeat); returns count -> (agent ids, certificate ids), as tests/scale/test_renewal_drain."""
    from pytest_certload.seeding.agent_bound import refresh_agents, seed_agent_bound_fleet
    from pytest_certload.stack.secret import connect_pg

    stack, _ = fault_stack
    if not stack.dsn:
        pytest.skip("the agent-bound fleet is seeded in SQL: this stack has no database DSN")

    def seed(count: int) -> tuple[list[str], list[str]]:
        with connect_pg(stack.dsn, connect_timeout=10) as conn:
            report = seed_agent_bound_fleet(conn, count, seeds_dir=certload_seeds_dir)
            refresh_agents(conn, list(report.agent_ids))
            conn.commit()
        return list(report.agent_ids), list(report.certificate_ids)

    return seed
