"""Is the stack still whole? Checked around every test that uses it (stack/plugin.py calls this).

A component that dies during a test fails that test with its log tail. The next test then gets
either a stack whose certctl / PostgreSQL the provider restarted (the report says so), or a clear
error naming what died, in which test, and its log tail -- never a half-dead stack whose
connection errors would be measured as a slow certctl. Only this process's own stacks can be
checked (an xdist worker that merely reads a stack another worker started has no provider).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_certload.stack.process import ComponentFailed
from pytest_certload.stack.provider import RESTARTABLE, RestartUnsupported, StackProvider

#: components a provider knows how to restart in place; any other death leaves the stack broken


def component_kind(process_name: str) -> str:
    """'certctl stand-in' and 'certctl' are both certctl; other names are what they say."""
    return "certctl" if process_name.startswith("certctl") else process_name


@dataclass
class StackHealth:
    """What this process knows of its stacks' health: which are broken and why."""

    broken: dict[str, str] = field(default_factory=dict)  # stack name -> the error every later test gets
    restarted: list[str] = field(default_factory=list)  # one line per restart done between tests

    def died_during(self, nodeid: str, stacks: Iterable[tuple[str, StackProvider]]) -> str | None:
        """After a test's call: the failure message when a component of its stacks died, else None."""
        lines = []
        for name, provider in stacks:
            dead = provider.dead_components()
            if dead:
                lines += [f"stack {name!r}: {comp} {why}" for comp, why in dead.items()]
        if not lines:
            return None
        return f"a stack component died during {nodeid}:\n" + "\n".join(lines)

    def ensure(self, nodeid: str, stacks: Iterable[tuple[str, StackProvider]]) -> str | None:
        """Before a test: restart dead certctl / PostgreSQL; the error for this test when that fails.

        Returns None when every stack is whole (perhaps after a restart, noted in ``restarted``).
        A stack found broken once stays broken for the rest of the run: every later test gets the
        same message instead of a load phase against it.
        """
        for name, provider in stacks:
            if name in self.broken:
                return self.broken[name]
            dead = provider.dead_components()
            if not dead:
                continue
            problem = self._restart(name, provider, dead, nodeid)
            if problem is not None:
                self.broken[name] = problem
                return problem
        return None

    def _restart(self, name: str, provider: StackProvider, dead: dict[str, str], nodeid: str) -> str | None:
        for comp, why in dead.items():
            kind = component_kind(comp)
            if kind not in RESTARTABLE:
                return broken_message(name, comp, why, "the plugin does not restart it")
            try:
                ready_s = provider.restart_component(kind)
            except (RestartUnsupported, ComponentFailed) as exc:
                return broken_message(name, comp, why, f"restarting it failed: {exc}")
            self.restarted.append(
                f"certload: stack {name!r}: {comp} had died ({why.splitlines()[0]}); "
                f"restarted before {nodeid}, ready in {ready_s:.1f} s"
            )
        return None


def broken_message(stack: str, component: str, why: str, what_now: str) -> str:
    return (
        f"the certload stack {stack!r} is broken: {component} {why}\n"
        f"{what_now}, so no load test runs against this stack for the rest of the run "
        "(its connection errors would be measured as a slow certctl). Fix the cause and run again."
    )
