"""Scheduling for split mode: every load test goes to every worker, in collection order, first.

The workers then run the load tests back to back in the same order, so two phases never overlap;
the other tests are load-balanced as xdist's ``load`` mode does. xdist offers a scheduler protocol
(``xdist.scheduler.protocol.Scheduling``) and the public hook ``pytest_xdist_make_scheduler``, but
no way to send one test to several workers in ``load`` mode, so this extends xdist's
``LoadScheduling`` and relies on its internal attributes: they are listed, with the xdist versions
tested, in :mod:`pytest_certload.xdist.internals`.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_certload.xdist.barrier import Coordinator


def split_scheduling_class() -> type:
    from xdist.scheduler import LoadScheduling

    class SplitScheduling(LoadScheduling):
        """xdist's load scheduling, except that load tests go to every worker first, in order."""

        def __init__(self, config: pytest.Config, log: Any, coordinator: Coordinator) -> None:
            super().__init__(config, log)
            self.coordinator = coordinator
            self.load_indices: list[int] = []

        def schedule(self) -> None:
            if self.collection is not None or not self._check_nodes_have_same_collection():
                super().schedule()
                return
            collection = next(iter(self.node2collection.values()))
            with self.coordinator.cond:
                load = set(self.coordinator.load_nodeids)
            self.load_indices = [i for i, nodeid in enumerate(collection) if nodeid in load]
            if not self.load_indices:
                super().schedule()
                return
            self.collection = collection
            if self.maxschedchunk is None:
                self.maxschedchunk = len(collection)
            chosen = set(self.load_indices)
            self.pending[:] = [i for i in range(len(collection)) if i not in chosen]
            for node in self.nodes:
                self.node2pending[node].extend(self.load_indices)
                node.send_runtest_some(list(self.load_indices))
            if self.pending:
                for node in self.nodes:
                    self.check_schedule(node)
            else:
                for node in self.nodes:
                    node.shutdown()

        def remove_node(self, node: Any) -> str | None:
            """A dead worker's load tests are not rerun elsewhere (their phase ran without it)."""
            pending = self.node2pending.get(node, [])
            chosen = set(self.load_indices)
            self.node2pending[node] = pending[:1] + [i for i in pending[1:] if i not in chosen]
            return super().remove_node(node)

    return SplitScheduling
