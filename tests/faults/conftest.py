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
