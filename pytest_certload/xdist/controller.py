"""The controller's side of split mode: the barrier server, the scheduler, one report per load test.

With ``pytest -n N`` (or ``--tx`` specs and ``--dist load``/``worksteal``/``each``) every load test
runs on every worker, each with a share of its load (:mod:`.scheduling`, :mod:`.barrier`). The
:class:`ReportMerger` holds the workers' reports of a load test until all of them finished it and
emits one merged report (:mod:`.merge`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pytest_certload.xdist.barrier import Coordinator, CoordinatorServer
from pytest_certload.xdist.internals import DSESSION_HANDLERS, check
from pytest_certload.xdist.merge import merge_reports, merge_worker_phases
from pytest_certload.xdist.mode import WORKERINPUT_KEY, split_mode, worker_order
from pytest_certload.xdist.scheduling import split_scheduling_class


class ControllerPlugin:
    """Registered on an xdist controller that splits load tests across its workers."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.server: CoordinatorServer | None = None
        self.merger: ReportMerger | None = None

    def _serve(self) -> CoordinatorServer:
        if self.server is None:
            check()
            coordinator = Coordinator(timeout_s=float(self.config.getoption("certload_barrier_timeout")))
            self.server = CoordinatorServer(coordinator, self.config.getoption("certload_controller_host"))
        return self.server

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if not split_mode(self.config):
            return
        server = self._serve()
        node.workerinput[WORKERINPUT_KEY] = server.address
        from xdist.workermanage import parse_tx_spec_config

        # replacements for crashed workers get no load tests: they take no part in phases
        if len(server.coordinator.participants) < len(parse_tx_spec_config(self.config)):
            server.coordinator.add_participant(node.gateway.id)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if not split_mode(config) or self.server is None:
            return None
        dsession = config.pluginmanager.getplugin("dsession")
        if dsession is not None and self.merger is None:
            self.merger = ReportMerger(dsession, self.server.coordinator)
        if config.getvalue("dist") == "each":
            return None  # xdist's own: every test on every worker, in the same order
        return split_scheduling_class()(config, log, self.server.coordinator)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


class ReportMerger:
    """Wraps the DSession's worker event handlers so a load test yields one set of reports."""

    def __init__(self, dsession: Any, coordinator: Coordinator) -> None:
        self.dsession = dsession
        self.coordinator = coordinator
        self.held: dict[str, dict[str, list[Any]]] = {}
        self.logstarted: set[str] = set()
        self.nodes: dict[str, Any] = {}
        self.original = {name: getattr(dsession, name) for name in DSESSION_HANDLERS}
        for name in self.original:
            setattr(dsession, name, getattr(self, name))

    def _split(self, nodeid: str) -> bool:
        return nodeid in self.coordinator.load_nodeids

    def worker_testreport(self, node: Any, rep: Any) -> None:
        if not self._split(rep.nodeid):
            self.original["worker_testreport"](node=node, rep=rep)
            return
        wid = node.gateway.id
        self.nodes[wid] = node
        self.held.setdefault(rep.nodeid, {}).setdefault(wid, []).append(rep)

    def worker_logstart(self, node: Any, nodeid: str, location: Any) -> None:
        if self._split(nodeid):
            if nodeid in self.logstarted:
                return
            self.logstarted.add(nodeid)
        self.original["worker_logstart"](node=node, nodeid=nodeid, location=location)

    def worker_logfinish(self, node: Any, nodeid: str, location: Any) -> None:
        if not self._split(nodeid):
            self.original["worker_logfinish"](node=node, nodeid=nodeid, location=location)
            return
        self.coordinator.worker_finished(nodeid, node.gateway.id)
        self._flush_ready({nodeid: location})

    def worker_errordown(self, node: Any, error: object | None) -> None:
        self.original["worker_errordown"](node=node, error=error)
        self.coordinator.worker_died(node.gateway.id)
        self._flush_ready({})

    def handle_crashitem(self, nodeid: str, worker: Any) -> None:
        """A worker died inside a load test: its failure joins the test's one merged report."""
        if not self._split(nodeid):
            self.original["handle_crashitem"](nodeid, worker)
            return
        fspath = nodeid.split("::")[0]
        wid = worker.gateway.id
        report = pytest.TestReport(
            nodeid=nodeid,
            location=(fspath, None, fspath),
            keywords={},
            outcome="failed",
            longrepr=f"worker {wid!r} crashed while running {nodeid!r}",
            when="call",
        )
        self.nodes[wid] = worker
        self.held.setdefault(nodeid, {}).setdefault(wid, []).append(report)

    def _flush_ready(self, locations: Mapping[str, Any]) -> None:
        for nodeid in list(self.held):
            if self.coordinator.expected(nodeid):
                continue
            self._flush(nodeid, locations.get(nodeid))

    def _flush(self, nodeid: str, location: Any) -> None:
        by_worker = self.held.pop(nodeid)
        serialised = {
            w: [d for r in reps for d in (getattr(r, "certload_phases", None) or [])]
            for w, reps in by_worker.items()
        }
        phases = merge_worker_phases(serialised)
        # a worker that died inside this test (no teardown report): its share of the phase is missing
        dead = sorted(
            (
                w
                for w, reps in by_worker.items()
                if w in self.coordinator.dead and reps[-1].when != "teardown"
            ),
            key=worker_order,
        )
        node = None
        for when in ("setup", "call", "teardown"):
            parts = [(w, r) for w, reps in by_worker.items() for r in reps if r.when == when]
            if not parts:
                continue
            report = merge_reports(when, parts, phases if when == "call" else [])
            if dead and when == "call":
                report.sections.append(("certload split", f"worker(s) {', '.join(dead)} died during the run"))
                if report.passed:
                    report.outcome = "failed"
                    report.longrepr = f"worker(s) {', '.join(dead)} died: the phase ran without their share"
            node = self.nodes[sorted({w for w, _ in parts}, key=worker_order)[0]]
            self.original["worker_testreport"](node=node, rep=report)
        if node is not None and location is not None:
            self.original["worker_logfinish"](node=node, nodeid=nodeid, location=location)
