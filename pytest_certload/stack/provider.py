"""The protocol every stack provider follows: start everything or nothing, stop whatever started.

A provider (``native``: local processes; ``docker``: testcontainers) starts PostgreSQL, certctl (or the
stand-in) and the target sidecars and returns the :class:`~pytest_certload.stack.model.Stack`. If any
part fails, what already started is stopped before the error propagates, so a failed start leaves
nothing running. A new provider is one module with one subclass.

Fault scenarios (``pytest_certload/faults/``) and the stack health check between tests also need
to restart one component and to ask which components died; a provider that cannot says so with
:class:`RestartUnsupported` (the fault test skips with that reason).
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod

from pytest_certload.stack.model import Stack

#: the components a provider may restart (faults, and the health check between tests)
RESTARTABLE = ("certctl", "postgresql")


class StackProvider(ABC):
    """Start a stack all-or-nothing (``start``), and stop it (``stop``, safe to call twice)."""

    #: the stack :meth:`start` returned (a restart updates what it says of the restarted process)
    stack: Stack | None = None

    def start(self) -> Stack:
        try:
            self.stack = self._start()
            return self.stack
        except BaseException:
            self.stop()
            raise

    @abstractmethod
    def _start(self) -> Stack:
        """Start every component and return the stack (may leave parts running when it raises)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every component this provider started."""

    # -- faults and health (pytest_certload/faults/, stack/plugin.py's check between tests) -----------
    def dead_components(self) -> dict[str, str]:
        """Components that are no longer running: name -> how they ended and their log tail."""
        return {}

    def cannot_restart(self, name: str) -> str | None:
        """Why ``name`` cannot be restarted by this provider, or None when it can."""
        return f"{type(self).__name__} cannot restart {name}"

    def restart_component(self, name: str, signum: int = signal.SIGTERM) -> float:
        """Stop ``name`` ("certctl" or "postgresql") with ``signum``, start it again, wait until it is
        ready; returns the seconds until ready. Raises :class:`RestartUnsupported` when this provider
        cannot, :class:`~pytest_certload.stack.process.ComponentFailed` when it does not come back."""
        raise RestartUnsupported(f"{type(self).__name__} cannot restart {name}")


class RestartUnsupported(RuntimeError):
    """This provider cannot restart that component (the message says why)."""
