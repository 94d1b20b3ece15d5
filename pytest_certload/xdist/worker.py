"""The worker's side of split mode: say which tests are load tests, meet the others at each phase.

At collection the worker tells the controller which of its tests are load tests (the controller
does not collect). Before each phase the runner asks :class:`BarrierSplitter` for this worker's
share (:class:`pytest_certload.split.Share`); it waits at the controller's barrier for it. After the
phase it hands its judged share over and gets the merged phase back for the test body.
"""

from __future__ import annotations

import time

import pytest

from pytest_certload.session import OPTIONS
from pytest_certload.split import SPLIT_ITEM, SPLITTER, Share
from pytest_certload.verdict import PhaseVerdict
from pytest_certload.xdist.barrier import ask
from pytest_certload.xdist.mode import WORKERINPUT_KEY


def is_load_test(item: pytest.Item) -> bool:
    """A test whose load splits across the workers: it uses the ``certload`` fixture (with or without
    a marker), unless its marker says ``split=False`` (then it runs whole on one worker).

    Decided once, at collection: every such test goes to every worker and each runs its share, so
    no worker ever waits at a barrier for a test the others don't run.
    """
    if "certload" not in getattr(item, "fixturenames", ()):
        return False
    options = item.stash.get(OPTIONS, None)
    return options is None or options.split


class BarrierSplitter:
    """A PhaseSplitter that gets each share from the controller's barrier."""

    def __init__(self, config: pytest.Config) -> None:
        self.address: str = config.workerinput[WORKERINPUT_KEY]  # type: ignore[attr-defined]
        self.worker: str = config.workerinput["workerid"]  # type: ignore[attr-defined]
        self.timeout_s = float(config.getoption("certload_barrier_timeout")) + 30.0

    def join(self, nodeid: str, phase: int) -> Share:
        """Wait at the barrier for phase ``phase`` of ``nodeid``; return this worker's share."""
        message = {"op": "barrier", "nodeid": nodeid, "key": f"{nodeid}#{phase}", "worker": self.worker}
        reply = ask(self.address, message, self.timeout_s)
        received = time.time()
        if "error" in reply:
            raise RuntimeError(f"certload split mode: {reply['error']}")
        return Share(
            phase=phase,
            index=int(reply["index"]),
            count=int(reply["count"]),
            start_at=received + float(reply["start_in"]),
            worker=self.worker,
            members=tuple(reply["members"]),
        )

    def merge(self, nodeid: str, phase: int, share: PhaseVerdict) -> PhaseVerdict:
        """Hand this worker's judged share to the controller; get the merged phase back."""
        message = {"op": "merge", "key": f"{nodeid}#{phase}", "worker": self.worker, "phase": share.to_dict()}
        reply = ask(self.address, message, self.timeout_s)
        merged = reply.get("phase", reply)
        if "error" in merged:
            raise RuntimeError(f"certload split mode: {merged['error']}")
        return PhaseVerdict.from_dict(merged)


class WorkerPlugin:
    """Registered on an xdist worker whose controller splits load tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.splitter = BarrierSplitter(config)
        config.stash[SPLITTER] = self.splitter

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Tell the controller which tests are load tests, before xdist reports the collection."""
        load = []
        for item in session.items:
            if is_load_test(item):
                load.append(item.nodeid)
                item.stash[SPLIT_ITEM] = True
        message = {"op": "load_tests", "worker": self.splitter.worker, "nodeids": load}
        reply = ask(self.splitter.address, message, 60.0)
        if "error" in reply:
            raise RuntimeError(f"certload split mode: {reply['error']}")
