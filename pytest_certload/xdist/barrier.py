"""The phase barrier: a small TCP server in the controller where workers meet before each phase.

Each phase waits until every participating worker reached it, then all start together
``START_MARGIN_S`` later. The barrier hands out the shares: worker ``i`` of the ``n`` that arrived
runs arrivals ``i, i+n, ...`` of the one schedule (``ExecutorSpec.with_share``) or its part of the
VUs. A worker that finished the test without reaching the phase (a skip) or died is not waited for.
Start times are sent as "start in s seconds", so hosts need no common clock.

The wire protocol is one JSON line each way. The listener has no authentication: it binds to
loopback by default (``--certload-controller-host``); bind it to another address only on a network
whose hosts you trust.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_certload.xdist.merge import merge_phase_dicts
from pytest_certload.xdist.mode import worker_order

#: the barrier answers "start in this many seconds": time for every worker to hear it and set up
START_MARGIN_S = 0.25
DEFAULT_BARRIER_TIMEOUT_S = 900.0


def ask(address: str, message: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=10.0) as conn:
        conn.settimeout(timeout)
        conn.sendall(json.dumps(message).encode() + b"\n")
        with conn.makefile("rb") as stream:
            line = stream.readline()
    if not line:
        raise ConnectionError(f"the certload controller at {address} closed the connection")
    return json.loads(line)


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
    delivered: dict[str, dict[str, dict]] = field(default_factory=dict)  # phase key -> worker -> share
    merging: set[str] = field(default_factory=set)  # phase keys being merged right now
    merged: dict[str, tuple[dict, set[str]]] = field(default_factory=dict)  # key -> (phase, to collect)
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
            self.cond.notify_all()  # a merge waiting for this worker's share goes on without it

    # called from the server's threads -----------------------------------------------------------

    def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "load_tests":
            with self.cond:
                self.load_nodeids.update(message["nodeids"])
            return {"ok": True}
        if op == "barrier":
            return self.barrier(message["nodeid"], message["key"], message["worker"])
        if op == "merge":
            return self.merge(message["key"], message["worker"], message["phase"])
        return {"error": f"unknown request {op!r}"}

    def barrier(self, nodeid: str, key: str, wid: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        with self.cond:
            self.arrived.setdefault(key, set()).add(wid)
            self._release_ready()
            while key not in self.released:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(self.expected(nodeid) - self.arrived[key], key=worker_order)
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

    def merge(self, key: str, wid: str, share: dict[str, Any]) -> dict[str, Any]:
        """Collect every member's share of a phase; answer each with the merged phase.

        So the test body on every worker sees the whole phase (its custom assertions and thresholds
        judge the merged samples), while each worker still reports only its own share to the
        summary. A member that dies is not waited for.
        """
        deadline = time.monotonic() + self.timeout_s
        with self.cond:
            release = self.released.get(key)
            if release is None or wid not in release.members:
                return {"error": f"phase {key}: worker {wid} did not start it"}
            self.delivered.setdefault(key, {})[wid] = share
            self.cond.notify_all()
            while True:
                if key in self.merged:
                    return {"phase": self._collect(key, wid)}
                missing = set(release.members) - self.dead - set(self.delivered[key])
                if not missing and key not in self.merging:
                    self.merging.add(key)
                    parts = [self.delivered[key][w] for w in sorted(self.delivered[key], key=worker_order)]
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return {
                        "error": f"phase {key}: waited {self.timeout_s:g}s for the share(s) of "
                        f"{', '.join(sorted(missing, key=worker_order))}"
                    }
                self.cond.wait(left)
        try:
            phase = merge_phase_dicts(parts)
        except Exception as exc:  # the others must not wait forever for a merge that failed
            phase = {"error": f"merging phase {key}: {type(exc).__name__}: {exc}"}
        with self.cond:
            self.merged[key] = (phase, set(self.delivered.pop(key)))
            self.merging.discard(key)
            self.cond.notify_all()
            return {"phase": self._collect(key, wid)}

    def _collect(self, key: str, wid: str) -> dict[str, Any]:
        """The merged phase for ``wid``; forgotten once every member that delivered has it."""
        phase, readers = self.merged[key]
        readers.discard(wid)
        if not readers:
            del self.merged[key]
        return phase

    def _release_ready(self) -> None:
        """Release every phase whose expected workers have all arrived (call with the lock held)."""
        released_any = False
        for key, arrived in self.arrived.items():
            if key in self.released:
                continue
            nodeid = key.rpartition("#")[0]
            if arrived >= self.expected(nodeid):
                members = tuple(sorted(arrived, key=worker_order))
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
