"""The contract between the runner and any scale-out: a phase split into shares.

The runner (:mod:`pytest_certload.runner`) knows nothing of pytest-xdist. When a process runs only a
share of each load phase, whoever arranges that (today :mod:`pytest_certload.xdist.worker`) puts a
:class:`PhaseSplitter` into the config's stash under :data:`SPLITTER`. Before each phase the runner
asks it for this process's :class:`Share`, runs only that share (``ExecutorSpec.with_share``) from
the common start instant, and returns deferred results: the verdict belongs to whoever merges the
shares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pytest

from pytest_certload.verdict import PhaseVerdict


@dataclass(frozen=True)
class Share:
    """This process's part of one phase: arrivals ``index, index+count, ...`` of the one schedule."""

    phase: int  # the phase's number within its test (a test may run several)
    index: int
    count: int
    start_at: float  # this host's time.time() at which the phase starts
    worker: str
    members: tuple[str, ...]

    def to_meta(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "index": self.index,
            "count": self.count,
            "worker": self.worker,
            "members": list(self.members),
        }


class PhaseSplitter(Protocol):
    """Hands out shares of a phase, and merges them again."""

    def join(self, nodeid: str, phase: int) -> Share:
        """This process's share; blocks until every participant reached the phase."""
        ...

    def merge(self, nodeid: str, phase: int, share: PhaseVerdict) -> PhaseVerdict:
        """The whole phase, judged again on every participant's merged samples."""
        ...


SPLITTER = pytest.StashKey[PhaseSplitter]()
#: set on the items whose phases split (the others, e.g. ``split=False``, run whole where they run)
SPLIT_ITEM = pytest.StashKey[bool]()


def share_runs(runs: Iterable[Any], share: Share) -> list[Any]:
    """The phase's ScenarioRuns restricted to this share."""
    return [replace(run, spec=run.spec.with_share(share.index, share.count)) for run in runs]
