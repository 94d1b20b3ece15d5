"""The interface every fault injector follows: inject at a set time, undo, say what was done and when.

An injector's ``inject`` and ``undo`` are blocking (they restart processes, open database
connections, run ``ip``/``iptables``); the fault scenario (``faults/driver.py``) calls them off the
event loop. ``undo`` is idempotent and safe to call when nothing was injected, and an injector is
a context manager whose exit always undoes: a test that is interrupted mid-phase still leaves the
stack, the database and the network as it found them.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class FaultEvent:
    """One thing an injector did: what, when (epoch seconds), and anything worth knowing."""

    what: str
    at: float
    detail: str = ""

    def to_dict(self) -> dict:
        return {"what": self.what, "at": self.at, "detail": self.detail}


class Injector(ABC):
    """A fault: ``inject()`` starts it, ``undo()`` ends it (idempotent), ``events`` say when.

    ``hold_s`` is how long the fault lasts between ``inject`` and ``undo`` (0 for faults that are
    over once ``inject`` returns, such as a restart: the restart *is* the fault).
    """

    #: a short name for reports and metric tags (``certctl_restart``, ``postgres_slow``, ...)
    kind = "fault"

    def __init__(self, hold_s: float = 0.0) -> None:
        if hold_s < 0:
            raise ValueError(f"hold_s={hold_s!r}: a fault cannot last less than 0 s")
        self.hold_s = hold_s
        self.events: list[FaultEvent] = []
        self._lock = threading.Lock()
        self._active = False

    def note(self, what: str, detail: str = "") -> FaultEvent:
        event = FaultEvent(what, time.time(), detail)
        self.events.append(event)
        return event

    def inject(self) -> None:
        """Start the fault (blocking until it is in place; a restart: until the component is back)."""
        with self._lock:
            self.note("inject", self.describe())
            self._active = True
            self._inject()
            self.note("injected")

    def undo(self) -> None:
        """End the fault; does nothing when it is not in place. Never raises for 'already undone'."""
        with self._lock:
            if not self._active:
                return
            self._active = False
            self._undo()
            self.note("undone")

    @abstractmethod
    def _inject(self) -> None: ...

    def _undo(self) -> None:  # noqa: B027 - most faults (restarts) have nothing to undo
        """Take the fault away again (default: nothing to do)."""

    @abstractmethod
    def describe(self) -> str:
        """One line: what this fault does to which component."""

    def report(self) -> dict:
        """What was done and when, JSON-safe (for ``record_property`` and the README figures)."""
        return {"kind": self.kind, "fault": self.describe(), "events": [e.to_dict() for e in self.events]}

    def __enter__(self) -> Injector:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.undo()
