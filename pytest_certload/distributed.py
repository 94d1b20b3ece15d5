"""Scale-out with pytest-xdist: every load scenario runs on every worker, each with a share of the load.

With ``pytest -n N`` (or ``--tx`` specs and ``--dist load``/``worksteal``/``each``) the load of each
``@pytest.mark.certload`` test is split across the workers instead of running whole on one of them:

- **scheduling** (:class:`SplitScheduling`): every load test goes to *every* worker, in collection
  order and ahead of the other tests, which are load-balanced as xdist's ``load`` mode does. So the
  workers run the load tests back to back in the same order and two phases never overlap;
- **barrier** (:class:`Coordinator`, a small TCP server in the controller on
  ``--certload-controller-host``): each phase waits until every participating worker reached it,
  then all start together ``START_MARGIN_S`` later. The barrier hands out the shares: worker ``i`` of
  the ``n`` that arrived runs arrivals ``i, i+n, ...`` of the one schedule (ExecutorSpec.with_share)
  or its part of the VUs. A worker that finishes the test without reaching the phase (a skip) or
  dies is not waited for. Start times are sent as "start in s seconds", so hosts need no common clock;
- **one verdict** (:class:`ReportMerger`): the controller holds the workers' reports of a load test
  until all of them finished it, merges their phase records (samples pooled: merged percentiles are
  exact) and emits one report: an ERROR naming the worker if any generator saturated, else the
  first worker's failure, else the thresholds judged once on the merged data. On the workers,
  ``assert_thresholds()`` only notes that the test asks for the verdict (partial data is not judged).

Other ``--dist`` modes (loadscope, loadfile, loadgroup) keep xdist's scheduler and run each load test
whole on one worker, as without this module.
"""

from __future__ import annotations

import copy
import json
import math
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_certload.report.records import PhaseRecord, PhaseResults, ScenarioInfo, ScenarioResult

#: xdist --dist modes in which load tests are split across the workers
SPLIT_DIST_MODES = ("load", "worksteal", "each")
#: the barrier answers "start in this many seconds": time for every worker to hear it and set up
START_MARGIN_S = 0.25
DEFAULT_BARRIER_TIMEOUT_S = 900.0
WORKERINPUT_KEY = "certload_controller"  # "host:port" of the coordinator, set only in split mode
META_KEY = "certload_split"  # PhaseResult.meta entry: this worker's share of the phase


# --- options ----------------------------------------------------------------------------------------


def add_options(group: Any) -> None:
    """The split-mode options (called from plugin.pytest_addoption)."""
    group.addoption(
        "--certload-controller-host",
        metavar="ADDR",
        default="127.0.0.1",
        help="pytest-xdist split mode: address the controller's phase barrier listens on; workers on "
        "other hosts (--tx socket=...) must reach it (default 127.0.0.1: local workers only)",
    )
    group.addoption(
        "--certload-barrier-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_BARRIER_TIMEOUT_S,
        help="pytest-xdist split mode: how long a worker waits for the others at a phase's start",
    )


def split_mode(config: pytest.Config) -> bool:
    """Is this controller splitting load tests across xdist workers?"""
    if hasattr(config, "workerinput"):
        return WORKERINPUT_KEY in config.workerinput  # type: ignore[attr-defined]
    dist = getattr(config.option, "dist", "no")
    return bool(getattr(config.option, "tx", None)) and dist in SPLIT_DIST_MODES


def worker_id(config: pytest.Config) -> str:
    return config.workerinput["workerid"]  # type: ignore[attr-defined]


def _worker_order(wid: str) -> tuple[int, str]:
    match = re.fullmatch(r"gw(\d+)", wid)
    return (int(match.group(1)) if match else math.inf, wid)  # type: ignore[return-value]


# --- wire protocol: one JSON line each way ----------------------------------------------------------


def _ask(address: str, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10.0) as conn:
        conn.settimeout(timeout)
        conn.sendall(json.dumps(message).encode() + b"\n")
        with conn.makefile("rb") as stream:
            line = stream.readline()
    if not line:
        raise ConnectionError(f"the certload controller at {address} closed the connection")
    return json.loads(line)


# --- the controller's coordinator -------------------------------------------------------------------


@dataclass
class _Release:
    members: tuple[str, ...]
    start_wall: float  # controller's time.time() at which the phase starts


@dataclass
class Coordinator:
    """Which workers take part, which tests are load tests, and the per-phase start barrier."""

    timeout_s: float = DEFAULT_BARRIER_TIMEOUT_S
    margin_s: float = START_MARGIN_S
    participants: set[str] = field(default_factory=set)
    dead: set[str] = field(default_factory=set)
    load_nodeids: set[str] = field(default_factory=set)
    finished: dict[str, set[str]] = field(default_factory=dict)  # nodeid -> workers done with it
    arrived: dict[str, set[str]] = field(default_factory=dict)  # phase key -> workers waiting
    released: dict[str, _Release] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    # called from the main thread (xdist events) -------------------------------------------------

    def add_participant(self, wid: str) -> None:
        with self.cond:
            self.participants.add(wid)

    def expected(self, nodeid: str) -> set[str]:
        """Workers that still have to reach phases of ``nodeid``."""
        return self.participants - self.dead - self.finished.get(nodeid, set())

    def worker_finished(self, nodeid: str, wid: str) -> None:
        with self.cond:
            self.finished.setdefault(nodeid, set()).add(wid)
            self._release_ready()

    def worker_died(self, wid: str) -> None:
        with self.cond:
            self.dead.add(wid)
            self._release_ready()

    # called from the server's threads -----------------------------------------------------------

    def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "load_tests":
            with self.cond:
                self.load_nodeids.update(message["nodeids"])
            return {"ok": True}
        if op == "barrier":
            return self.barrier(message["nodeid"], message["key"], message["worker"])
        return {"error": f"unknown request {op!r}"}

    def barrier(self, nodeid: str, key: str, wid: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        with self.cond:
            self.arrived.setdefault(key, set()).add(wid)
            self._release_ready()
            while key not in self.released:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(self.expected(nodeid) - self.arrived[key], key=_worker_order)
                    return {
                        "error": f"phase {key}: waited {self.timeout_s:g}s for worker(s) "
                        f"{', '.join(missing)} to start it (raise --certload-barrier-timeout if they "
                        "were busy, or look for a worker that ran a different test order)"
                    }
                self.cond.wait(left)
            release = self.released[key]
        if wid not in release.members:
            return {"error": f"phase {key} already started without worker {wid}"}
        return {
            "index": release.members.index(wid),
            "count": len(release.members),
            "members": list(release.members),
            "start_in": max(0.0, release.start_wall - time.time()),
        }

    def _release_ready(self) -> None:
        """Release every phase whose expected workers have all arrived (call with the lock held)."""
        released_any = False
        for key, arrived in self.arrived.items():
            if key in self.released:
                continue
            nodeid = key.rpartition("#")[0]
            if arrived >= self.expected(nodeid):
                members = tuple(sorted(arrived, key=_worker_order))
                self.released[key] = _Release(members, time.time() + self.margin_s)
                released_any = True
        if released_any:
            self.cond.notify_all()


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        try:
            message = json.loads(self.rfile.readline())
            reply = self.server.coordinator.handle(message)  # type: ignore[attr-defined]
        except Exception as exc:  # a bad request must not take the controller down
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class CoordinatorServer:
    """The coordinator behind a TCP listener in a daemon thread."""

    def __init__(self, coordinator: Coordinator, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _Server.address_family = family
        self.server = _Server((host, 0), _Handler)
        self.server.coordinator = coordinator  # type: ignore[attr-defined]
        self.coordinator = coordinator
        port = self.server.server_address[1]
        self.address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="certload-barrier", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- scheduling -------------------------------------------------------------------------------------


def _split_scheduling_class() -> type:
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


# --- merging the workers' results -------------------------------------------------------------------


_FIRST_KEYS = {"started_at"}
_LAST_KEYS = {"ended_at"}
_SAME_KEYS = {"schedule_seconds", "late_start_tolerance_ms"}


def _merge_scenario_meta(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One scenario's executor facts over the shares: counts and rates add, bounds widen."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in _FIRST_KEYS and isinstance(value, int | float):
                out[key] = min(out.get(key, value), value)
            elif key in _LAST_KEYS and isinstance(value, int | float):
                out[key] = max(out.get(key, value), value)
            elif key in _SAME_KEYS or isinstance(value, bool) or not isinstance(value, int | float):
                out.setdefault(key, value)
            else:
                out[key] = out.get(key, 0) + value
    out["share"] = [0, 1]
    out["shares"] = len(parts)
    return out


def _reevaluate(verdicts: Sequence[Any], result: Any, seconds: float) -> list[Any]:
    """The same thresholds, judged again on the merged result."""
    from pytest_certload.thresholds import ThresholdSet, evaluate, parse_thresholds

    thresholds = tuple(parse_thresholds({v.metric_key: [v.expression]}).thresholds[0] for v in verdicts)
    return evaluate(ThresholdSet(thresholds), result, seconds)


def merge_phase_records(parts: Sequence[PhaseRecord]) -> PhaseRecord:
    """One record from the workers' records of one phase; thresholds are judged on the pooled data."""
    from pytest_certload.report.summary import scenario_seconds
    from pytest_certload.stats import PhaseResult

    parts = sorted(parts, key=lambda p: _worker_order(p.result.meta.get(META_KEY, {}).get("worker", "")))
    if len(parts) == 1:
        return parts[0]
    result = PhaseResult.merge(p.result for p in parts)
    metas = [p.result.meta for p in parts]
    workers = [m.get(META_KEY, {}).get("worker", f"part{i}") for i, m in enumerate(metas)]
    for m in metas:
        m.setdefault("scenarios", {})
    names = list(dict.fromkeys(n for m in metas for n in m["scenarios"]))
    result.meta = {
        "started_at": min(m.get("started_at", math.inf) for m in metas),
        "ended_at": max(m.get("ended_at", 0.0) for m in metas),
        "event_loop": metas[0].get("event_loop"),
        "late_start_tolerance_ms": metas[0].get("late_start_tolerance_ms"),
        "scenarios": {n: _merge_scenario_meta([m["scenarios"][n] for m in metas if n in m["scenarios"]])
                      for n in names},
        "workers": workers,
        "parts": metas,
        META_KEY: {"workers": workers, "count": len(parts), "asserted": any(_asserted(p) for p in parts)},
    }  # fmt: skip
    result.meta["wall_seconds"] = result.meta["ended_at"] - result.meta["started_at"]
    duration_s = max(p.duration_s for p in parts)
    scenarios = []
    for info in parts[0].scenarios:
        seconds = scenario_seconds(result, info.name, info.start_offset_s, duration_s, info.scheduled_s)
        scenarios.append(
            ScenarioInfo(
                name=info.name,
                options=info.options,
                executor=info.executor,
                target_rate_per_s=info.target_rate_per_s,
                target_vus=info.target_vus,
                verdicts=_reevaluate(info.verdicts, result, seconds),
                start_offset_s=info.start_offset_s,
                scheduled_s=info.scheduled_s,
            )
        )
    healths = {w: p.health for w, p in zip(workers, parts, strict=True)}
    worst = max(parts, key=lambda p: (p.saturated, p.health.get("lag_p99_ms", 0.0)))
    saturated = [(w, p) for w, p in zip(workers, parts, strict=True) if p.saturated]
    aborted = [(w, p.aborted) for w, p in zip(workers, parts, strict=True) if p.aborted]
    return PhaseRecord(
        nodeid=parts[0].nodeid,
        result=result,
        duration_s=duration_s,
        scenarios=scenarios,
        phase_verdicts=_reevaluate(parts[0].phase_verdicts, result, duration_s),
        health={**worst.health, "cpu_fraction_max": max(p.health.get("cpu_fraction", 0.0) for p in parts),
                "workers": healths},
        saturated=bool(saturated),
        saturation_reason="; ".join(f"worker {w}: {p.saturation_reason}" for w, p in saturated),
        aborted="; ".join(f"worker {w}: {a}" for w, a in aborted) or None,
        stack=next((p.stack for p in parts if p.stack is not None), None),
        id=parts[0].id,
    )  # fmt: skip


def _asserted(record: PhaseRecord) -> bool:
    return bool(record.result.meta.get(META_KEY, {}).get("asserted"))


def merge_worker_records(by_worker: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[PhaseRecord]:
    """Serialised records per worker (as xdist delivered them) -> one merged record per phase."""
    phases: dict[int, list[PhaseRecord]] = {}
    for data in (d for records in by_worker.values() for d in records):
        record = PhaseRecord.from_dict(data)
        phases.setdefault(int(record.result.meta.get(META_KEY, {}).get("phase", 0)), []).append(record)
    return [merge_phase_records(phases[k]) for k in sorted(phases)]


# --- one report per load test -----------------------------------------------------------------------


def _section(parts: Sequence[tuple[str, Any]], chosen: str) -> tuple[str, str]:
    lines = [f"{w}: {r.outcome}" + (" (shown above)" if w == chosen else "") for w, r in parts]
    return "certload split", "per-worker outcome: " + "; ".join(lines)


def merge_reports(when: str, parts: Sequence[tuple[str, Any]], records: Sequence[PhaseRecord]) -> Any:
    """One TestReport from the workers' reports of one test phase (setup, call or teardown)."""
    parts = sorted(parts, key=lambda p: _worker_order(p[0]))
    saturated = [(w, r) for w, r in parts if getattr(r, "certload_saturated", False)]
    failed = [(w, r) for w, r in parts if r.failed and not getattr(r, "certload_saturated", False)]
    chosen_w, chosen = (saturated or failed or [p for p in parts if p[1].passed] or parts)[0]
    report = copy.copy(chosen)
    report.sections = list(chosen.sections)
    # a crashed worker's report (made by the controller) has no line number: name the test as others do
    report.location = next((r.location for _, r in parts if r.location[1] is not None), report.location)
    report.duration = max(r.duration for _, r in parts)
    report.certload_records = None
    report.certload_split_workers = [w for w, _ in parts]
    if when != "call":
        if report.failed or len({r.outcome for _, r in parts}) > 1:
            report.sections.append(_section(parts, chosen_w))
        return report
    # the session plugin adopts these as it adopts a worker's records (plugin.SessionPlugin)
    report.certload_records = [r.to_dict() for r in records] or None
    if saturated:
        reasons = [r.saturation_reason for r in records if r.saturated] or [chosen.longreprtext]
        report.outcome = "failed"
        report.certload_saturated = True
        report.longrepr = f"GeneratorSaturated: {'; '.join(reasons)}"
    elif failed:
        report.sections.append(_section(parts, chosen_w))
    elif report.passed:
        breached = [r for r in records if _asserted(r) and not r.ok]
        if breached:
            from pytest_certload.thresholds import breach_message

            report.outcome = "failed"
            report.longrepr = "AssertionError: " + "\n".join(
                breach_message(r.verdicts, f"thresholds breached (merged over {len(parts)} workers)")
                for r in breached
            )
    return report


class ReportMerger:
    """Wraps the DSession's worker event handlers so a load test yields one set of reports."""

    def __init__(self, dsession: Any, coordinator: Coordinator) -> None:
        self.dsession = dsession
        self.coordinator = coordinator
        self.held: dict[str, dict[str, list[Any]]] = {}
        self.logstarted: set[str] = set()
        self.nodes: dict[str, Any] = {}
        self.original = {
            name: getattr(dsession, name)
            for name in (
                "worker_testreport",
                "worker_logstart",
                "worker_logfinish",
                "worker_errordown",
                "handle_crashitem",
            )
        }
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
            w: [d for r in reps for d in (getattr(r, "certload_records", None) or [])]
            for w, reps in by_worker.items()
        }
        records = merge_worker_records(serialised)
        # a worker that died inside this test (no teardown report): its share of the phase is missing
        dead = sorted(
            (
                w
                for w, reps in by_worker.items()
                if w in self.coordinator.dead and reps[-1].when != "teardown"
            ),
            key=_worker_order,
        )
        node = None
        for when in ("setup", "call", "teardown"):
            parts = [(w, r) for w, reps in by_worker.items() for r in reps if r.when == when]
            if not parts:
                continue
            report = merge_reports(when, parts, records if when == "call" else [])
            if dead and when == "call":
                report.sections.append(("certload split", f"worker(s) {', '.join(dead)} died during the run"))
                if report.passed:
                    report.outcome = "failed"
                    report.longrepr = f"worker(s) {', '.join(dead)} died: the phase ran without their share"
            node = self.nodes[sorted({w for w, _ in parts}, key=_worker_order)[0]]
            self.original["worker_testreport"](node=node, rep=report)
        if node is not None and location is not None:
            self.original["worker_logfinish"](node=node, nodeid=nodeid, location=location)


# --- deferred verdicts on workers ---------------------------------------------------------------------


def _mark_asserted(record: PhaseRecord) -> None:
    record.inspected = True
    record.result.meta.setdefault(META_KEY, {})["asserted"] = True


class DeferredScenarioResult(ScenarioResult):
    """A worker's share of a scenario: ``assert_thresholds`` leaves the verdict to the controller."""

    def assert_thresholds(self) -> None:
        _mark_asserted(self.record)


class DeferredPhaseResults(PhaseResults):
    """``run_many``'s results on a worker; ``assert_thresholds`` is judged on the merged data."""

    def __init__(self, record: PhaseRecord) -> None:
        super().__init__(record)
        self._by_name = {s.name: DeferredScenarioResult(record, s.name) for s in record.scenarios}

    def assert_thresholds(self) -> None:
        _mark_asserted(self.record)


# --- worker side ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """This worker's part of one phase, as the barrier handed it out."""

    phase: int
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


def join_phase(config: pytest.Config, nodeid: str, phase: int) -> Share:
    """Wait at the controller's barrier for phase ``phase`` of ``nodeid``; return this worker's share."""
    address = config.workerinput[WORKERINPUT_KEY]  # type: ignore[attr-defined]
    wid = worker_id(config)
    timeout = float(config.getoption("certload_barrier_timeout")) + 30.0
    message = {"op": "barrier", "nodeid": nodeid, "key": f"{nodeid}#{phase}", "worker": wid}
    reply = _ask(address, message, timeout)
    received = time.time()
    if "error" in reply:
        raise RuntimeError(f"certload split mode: {reply['error']}")
    return Share(
        phase=phase,
        index=int(reply["index"]),
        count=int(reply["count"]),
        start_at=received + float(reply["start_in"]),
        worker=wid,
        members=tuple(reply["members"]),
    )


def share_runs(runs: Iterable[Any], share: Share) -> list[Any]:
    """The phase's ScenarioRuns restricted to this worker's share."""
    from dataclasses import replace

    return [replace(run, spec=run.spec.with_share(share.index, share.count)) for run in runs]


# --- the pytest plugin --------------------------------------------------------------------------------


class DistributedPlugin:
    """Registered by plugin.pytest_configure on an xdist controller or worker."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.coordinator: Coordinator | None = None
        self.server: CoordinatorServer | None = None
        self.merger: ReportMerger | None = None

    # controller ---------------------------------------------------------------------------------

    def _serve(self) -> CoordinatorServer:
        if self.server is None:
            self.coordinator = Coordinator(timeout_s=float(self.config.getoption("certload_barrier_timeout")))
            self.server = CoordinatorServer(
                self.coordinator, self.config.getoption("certload_controller_host")
            )
        return self.server

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if hasattr(self.config, "workerinput") or not split_mode(self.config):
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
        return _split_scheduling_class()(config, log, self.server.coordinator)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    # worker -------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Tell the controller which tests are load tests, before xdist reports the collection."""
        if not (hasattr(self.config, "workerinput") and split_mode(self.config)):
            return
        from pytest_certload.plugin import OPTIONS

        load = [item.nodeid for item in session.items if item.stash.get(OPTIONS, None) is not None]
        message = {"op": "load_tests", "worker": worker_id(self.config), "nodeids": load}
        reply = _ask(self.config.workerinput[WORKERINPUT_KEY], message, 60.0)  # type: ignore[attr-defined]
        if "error" in reply:
            raise RuntimeError(f"certload split mode: {reply['error']}")


__all__ = [
    "Coordinator",
    "DeferredPhaseResults",
    "DeferredScenarioResult",
    "DistributedPlugin",
    "Share",
    "join_phase",
    "merge_phase_records",
    "merge_reports",
    "merge_worker_records",
    "share_runs",
    "split_mode",
]
