"""The protocol every stack provider follows: start everything or nothing, stop whatever started.

A provider (``native``: local processes; ``docker``: testcontainers) starts PostgreSQL, certctl (or the
stand-in) and the target sidecars and returns the :class:`~pytest_certload.stack.model.Stack`. If any
part fails, what already started is stopped before the error propagates, so a failed start leaves
nothing running. A new provider is one module with one subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pytest_certload.stack.model import Stack


class StackProvider(ABC):
    """Start a stack all-or-nothing (``start``), and stop it (``stop``, safe to call twice)."""

    def start(self) -> Stack:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    @abstractmethod
    def _start(self) -> Stack:
        """Start every component and return the stack (may leave parts running when it raises)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every component this provider started."""
