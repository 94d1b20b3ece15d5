"""Sampling the server side of one phase: snapshots before and after, a reading about once a second.

The readings run in a background thread (never on the engine's event loop). Its own CPU time is
measured (``sampler.cpu_s``) because it is spent inside the generator's process: the generator's CPU
in the bottleneck line has it taken out. The result is a plain, JSON-safe *block* that goes into the
phase's ``PhaseSamples.meta`` under :data:`META_KEY`; derived metrics are computed from it when the
phase is judged (:mod:`pytest_certload.serverside.derived`), so under pytest-xdist only the share
that sampled (index 0) carries one and the merged phase's request count divides it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from pytest_certload.serverside.derived import META_KEY
from pytest_certload.serverside.machine import machine_delta, read_machine
from pytest_certload.serverside.metrics import metrics_delta, scrape
from pytest_certload.serverside.postgres import PgProbe, counters_delta, statements_delta
from pytest_certload.serverside.process import ContainerProbe, PidProbe, ProcessProbe, ProcessReading

INTERVAL_S = 1.0
BLOCK_VERSION = 1


def _na(reason: str) -> dict[str, Any]:
    return {"na": reason}


__all__ = ["META_KEY", "ServerSampler"]


class ServerSampler:
    """Start before a phase's load, stop after it; :meth:`stop` returns the phase's server block."""

    def __init__(self, stack: Any, interval_s: float = INTERVAL_S) -> None:
        self.stack, self.interval_s = stack, interval_s
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._block: dict[str, Any] | None = None
        self._series: dict[str, list] = {"t": [], "rss": [], "threads": [], "fds": [], "connections": []}
        self._activity: list[dict[str, Any]] = []
        self._thread_cpu_s = 0.0
        self.port = urlsplit(stack.certctl_url).port if getattr(stack, "certctl_url", None) else None

    # -- probes ----------------------------------------------------------------------------------
    def _probe(self, pid: int | None, container: str | None, port: int | None, tree: bool) -> Any:
        try:
            if pid:
                return PidProbe(pid, port, tree=tree)
            if container:
                return ContainerProbe(container, port)
        except Exception as exc:
            return f"n/a: {type(exc).__name__}: {exc}"
        if self.stack.kind == "external":
            return "n/a: external stack (not a process of ours to read)"
        return "n/a: the stack did not name its process"

    def start(self) -> ServerSampler:
        stack = self.stack
        self._t0 = time.monotonic()
        self._started_at = time.time()
        self._metrics_before, self._metrics_why = scrape(
            stack.certctl_url, getattr(stack, "token", None), _ca(stack)
        )
        self.certctl = self._probe(stack.server_pid, stack.server_container, self.port, tree=False)
        self.postgres = self._probe(stack.postgres_pid, stack.postgres_container, None, tree=True)
        self.pg: PgProbe | str
        if stack.dsn is None:
            self.pg = "n/a: no database DSN (external stack without --certload-dsn)"
        else:
            try:
                self.pg = PgProbe(stack.dsn)
            except Exception as exc:  # connect_pg scrubs the DSN from its errors
                self.pg = f"n/a: database unreachable ({type(exc).__name__}: {exc})"
        self._machine0 = read_machine()
        self._proc0 = {name: self._read(p) for name, p in self._probes().items()}
        if isinstance(self.pg, PgProbe):
            self._statements0 = self.pg.statements()
            self._counters0 = self.pg.counters()
            self._own0 = self.pg.own_transactions - 1  # the counters read itself lands in the delta
        self._thread = threading.Thread(target=self._loop, name="certload-serverside", daemon=True)
        self._thread.start()
        return self

    def _probes(self) -> dict[str, ProcessProbe]:
        return {
            n: p
            for n, p in (("certctl", self.certctl), ("postgres", self.postgres))
            if not isinstance(p, str)
        }

    def _read(self, probe: ProcessProbe) -> ProcessReading:
        try:
            return probe.read()
        except Exception as exc:
            self._error(exc)
            return ProcessReading()

    def _error(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text not in self.errors and len(self.errors) < 5:
            self.errors.append(text)

    # -- the thread --------------------------------------------------------------------------------
    def _loop(self) -> None:
        cpu0 = time.thread_time()
        try:
            while not self._stop.wait(self.interval_s):  # the sampling period, not synchronisation
                self._sample()
        finally:
            self._thread_cpu_s = time.thread_time() - cpu0

    def _sample(self) -> None:
        if not isinstance(self.certctl, str):
            r = self._read(self.certctl)
            self._series["t"].append(round(time.monotonic() - self._t0, 3))
            for key, value in (
                ("rss", r.rss_bytes),
                ("threads", r.threads),
                ("fds", r.fds),
                ("connections", r.connections),
            ):
                self._series[key].append(value)
        if isinstance(self.pg, PgProbe):
            try:
                self._activity.append(self.pg.activity())
            except Exception as exc:
                self._error(exc)

    # -- the end ---------------------------------------------------------------------------------
    def stop(self) -> dict[str, Any]:
        """Stop the thread, take the "after" snapshots, return the block (the same block if called again)."""
        if self._block is not None:
            return self._block
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        database = self._database_after()
        proc1 = {name: self._read(p) for name, p in self._probes().items()}
        machine1 = read_machine()
        wall_s = time.monotonic() - self._t0
        metrics_after, why_after = scrape(
            self.stack.certctl_url, getattr(self.stack, "token", None), _ca(self.stack)
        )
        if self._metrics_before is not None and metrics_after is not None:
            metrics_block = metrics_delta(self._metrics_before, metrics_after)
        else:
            metrics_block = _na(self._metrics_why or why_after)
        self._block = {
            "version": BLOCK_VERSION,
            "provider": getattr(self.stack, "kind", None),
            "server": getattr(self.stack, "server", None),
            "started_at": self._started_at,
            "wall_s": wall_s,
            "sampler": {
                "interval_s": self.interval_s,
                "samples": len(self._series["t"]) or len(self._activity),
                "cpu_s": self._thread_cpu_s,
                "errors": list(self.errors),
            },
            "certctl": self._process_block("certctl", proc1, series=True),
            "postgres_process": self._process_block("postgres", proc1, series=False),
            "database": database,
            "metrics": metrics_block,
            "machine": machine_delta(self._machine0, machine1, wall_s),
        }
        self._close()
        return self._block

    def _process_block(self, name: str, after: dict[str, ProcessReading], series: bool) -> dict[str, Any]:
        probe = getattr(self, name)
        if isinstance(probe, str):
            return _na(probe)
        r0, r1 = self._proc0[name], after[name]
        out: dict[str, Any] = {
            "source": probe.source,
            "cpu_s": _delta(r0.cpu_s, r1.cpu_s),
            "rss_before": r0.rss_bytes,
            "rss_after": r1.rss_bytes,
            "restarts": getattr(probe, "restarts", 0),
        }
        if out["restarts"]:  # the old process's CPU time went with it: no honest total
            out["cpu_s"] = None
            out["na"] = "n/a: restarted during the phase (CPU time of the old process is lost)"
        if series:
            out["series"] = {k: list(v) for k, v in self._series.items()}
            for key in ("rss", "threads", "fds", "connections"):
                seen = [v for v in (*self._series[key], getattr(r1, _FIELD[key])) if v is not None]
                out[f"{key}_max"] = max(seen) if seen else None
        return out

    def _database_after(self) -> dict[str, Any]:
        if isinstance(self.pg, str):
            return _na(self.pg)
        try:
            statements1 = self.pg.statements()
            counters1 = self.pg.counters()
        except Exception as exc:
            self._error(exc)
            return _na(f"n/a: the after-snapshot failed ({type(exc).__name__}: {exc})")
        own = self.pg.own_transactions - self._own0 - 1  # every statement since, minus the last read
        if self._statements0 is not None and statements1 is not None:
            statements = statements_delta(self._statements0, statements1)
        else:
            statements = _na("n/a: pg_stat_statements is not installed in this database")
        waits: dict[str, int] = {}
        for sample in self._activity:
            for event, n in sample["wait_events"].items():
                waits[event] = waits.get(event, 0) + n
        return {
            "database": self.pg.dbname,
            "counters": counters_delta(self._counters0, counters1, own),
            "counters_note": "pg_stat_database: backends flush at most once a second (idle ones after 10 s)",
            "statements": statements,
            "activity": {
                "samples": len(self._activity),
                "backends_max": max((s["backends"] for s in self._activity), default=None),
                "active_max": max((s["active"] for s in self._activity), default=None),
                "lock_waiting_max": max((s["lock_waiting"] for s in self._activity), default=None),
                "lock_waiting_samples": sum(s["lock_waiting"] for s in self._activity),
                "locks_not_granted_max": max((s["locks_not_granted"] for s in self._activity), default=None),
                "wait_events": dict(sorted(waits.items(), key=lambda kv: -kv[1])[:10]),
            },
        }

    def _close(self) -> None:
        for probe in (self.certctl, self.postgres, self.pg):
            with contextlib.suppress(Exception):
                if not isinstance(probe, str) and hasattr(probe, "close"):
                    probe.close()


_FIELD = {"rss": "rss_bytes", "threads": "threads", "fds": "fds", "connections": "connections"}


def _delta(before: float | None, after: float | None) -> float | None:
    """after - before; None when either is unknown or the counter went back (a restarted container)."""
    if before is None or after is None or after < before:
        return None
    return after - before


def _ca(stack: Any) -> str | None:
    ca = getattr(stack, "ca_bundle", None)
    return str(ca) if ca else None
