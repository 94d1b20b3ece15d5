"""Restart a stack component mid-phase: certctl (SIGTERM: graceful; SIGKILL: crash) or PostgreSQL.

The provider does the restart (``StackProvider.restart_component``: the native stack restarts the
process with the same command, port and data; the docker stack stops or kills the container and
starts it again) and waits until the component is ready, so ``inject`` returns when it is back.
PostgreSQL's graceful variant is SIGINT, its "fast" shutdown (SIGTERM is "smart": it waits for
certctl's pooled connections to go, which they never do under load).
"""

from __future__ import annotations

import signal

from pytest_certload.faults.injector import Injector
from pytest_certload.stack.provider import RESTARTABLE, StackProvider

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


class ComponentRestart(Injector):
    """Stop ``component`` with ``signum`` and start it again; ``ready_s`` is how long it took."""

    def __init__(self, provider: StackProvider, component: str, signum: int = signal.SIGTERM) -> None:
        super().__init__(hold_s=0.0)
        if component not in RESTARTABLE:
            raise ValueError(f"component {component!r}: restartable are certctl and postgresql")
        self.provider, self.component, self.signum = provider, component, signal.Signals(signum)
        self.kind = f"{'certctl' if component == 'certctl' else 'postgres'}_restart"
        self.ready_s: float | None = None

    def describe(self) -> str:
        return f"restart {self.component} with {self.signum.name}"

    def _inject(self) -> None:
        self.ready_s = self.provider.restart_component(self.component, self.signum)
        self.note("ready", f"{self.component} ready {self.ready_s:.2f} s after it was started again")


def certctl_restart(provider: StackProvider, signal_name: str = "SIGTERM") -> ComponentRestart:
    return ComponentRestart(provider, "certctl", SIGNALS[signal_name])


def postgres_restart(provider: StackProvider, signal_name: str = "SIGINT") -> ComponentRestart:
    return ComponentRestart(provider, "postgresql", SIGNALS[signal_name])
