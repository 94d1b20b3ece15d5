"""A scenario at run time: the iteration function, its context, and how one iteration is run."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from time import monotonic_ns

from pytest_certload.engine.http import HttpClient, Response
from pytest_certload.engine.recording import ScenarioRecorder
from pytest_certload.engine.spec import ExecutorSpec

# An iteration that starts more than this after its intended time is a late start. Start lag
# measured here (benchmarks/bench_engine.py, 500-10,000 arrivals/s): p50 ~0.1-0.3 ms, p99 0.2-1 ms
# on a quiet 2-vCPU VM and 2-5 ms when other work shares it, so a healthy generator counts
# (almost) none; 5 ms is still below the latency of certctl's slower endpoints, so a lateness that
# visibly shifts a measured latency is counted. The lateness itself is always inside
# http_req_duration.
LATE_START_TOLERANCE_NS = 5_000_000

Iteration = Callable[["IterationContext"], Awaitable[None]]


@dataclass
class ScenarioRun:
    """One scenario of a phase: a name, an executor spec, the iteration, tags for its metrics."""

    name: str
    spec: ExecutorSpec
    iteration: Iteration
    tags: Mapping[str, str] = field(default_factory=dict)


class IterationContext:
    """What an iteration sees: who it is, when it was due, and a timed ``request``."""

    __slots__ = (
        "_first",
        "_runtime",
        "data",
        "intended_start_ns",
        "iteration",
        "scenario",
        "started_ns",
        "vu",
    )

    def __init__(
        self, runtime: ScenarioRuntime, vu: int, iteration: int, intended_start_ns: int, started_ns: int = 0
    ) -> None:
        self._runtime = runtime
        self.started_ns = started_ns or intended_start_ns  # when the generator got to it
        self.scenario = runtime.name
        self.vu = vu
        self.iteration = iteration  # scenario-wide index (global across xdist shares)
        self.intended_start_ns = intended_start_ns
        self._first = True
        self.data: dict = {}  # scratch space for multi-step iterations

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        tags: dict[str, str] | None = None,
        expected: Callable[[int], bool] | None = None,
        new_connection: bool = False,
        timeout: float | None = None,
    ) -> Response:
        """Send a request and record it; never raises for network failures (status 0)."""
        rt = self._runtime
        client = rt.client
        if rt.vu_clients is not None:  # HTTP/2: one connection per VU (its own client)
            client = rt.vu_clients.get(self.vu) or rt.vu_client(self.vu)
        resp = await client.request(
            method,
            url,
            headers=headers,
            body=body,
            new_connection=new_connection,
            timeout=rt.timeout if timeout is None else timeout,
        )
        queue = resp.queue_ns  # the handshake's wait for a thread or the loop
        end = resp.end_ns
        # service time: from the actual send (k6's http_req_duration: no pool wait, connect or TLS)
        service = end - (resp.sent_ns or end)
        if self._first:
            # coordinated-omission correction: the first request is measured from when the
            # iteration was due, so the generator's lateness and any queueing are in it
            self._first = False
            duration = end - self.intended_start_ns
            queue += max(self.started_ns - self.intended_start_ns, 0)
        else:
            duration = end - resp.start_ns
        status = resp.status
        if status == 0:
            failed = True
            rt.note_error(resp.error)
        elif expected is None:
            failed = not 200 <= status < 400
        else:
            failed = not expected(status)
        rt.recorder.request(resp, duration, service, tags, failed, queue)
        resp.duration_ns = duration
        return resp

    # custom metrics, as k6's Trend/Counter/Rate objects; tagged with the scenario's tags
    def trend(self, name: str, value_ns: int, tags: dict[str, str] | None = None) -> None:
        """Add a value (int nanoseconds) to a custom trend, e.g. ``acme_directory_duration``."""
        self._runtime.recorder.trend(name, value_ns, tags)

    def counter(self, name: str, n: float = 1, tags: dict[str, str] | None = None) -> None:
        """Add to a custom counter, e.g. ``acme_rate_limited_count``."""
        self._runtime.recorder.count(name, n, **(tags or {}))

    def rate(self, name: str, hit: bool, tags: dict[str, str] | None = None) -> None:
        """Add one observation to a custom rate metric."""
        self._runtime.recorder.rate(name, hit, tags)

    def check(self, name: str, ok: object) -> bool:
        """k6's ``check()``: one observation of the ``checks`` rate tagged ``check=<name>``.

        Returns ``ok`` as a bool, so ``if not ctx.check("status is 201", resp.status == 201)`` reads
        as in k6; thresholds take ``checks: rate>0.99`` or ``checks{check:status is 201}``.
        """
        hit = bool(ok)
        self._runtime.recorder.check(name, hit)
        return hit

    async def sleep(self, seconds: float) -> None:
        """Think time (e.g. acme_flow's 1 s pause); cancelled with the iteration at graceful stop."""
        await asyncio.sleep(seconds)


class ScenarioRuntime:
    """Runs single iterations of one scenario and keeps its per-scenario bookkeeping."""

    def __init__(self, run: ScenarioRun, client: HttpClient, recorder: ScenarioRecorder) -> None:
        self.name = run.name
        self.spec = run.spec
        self.fn = run.iteration
        self.client = client
        self.recorder = recorder
        self.timeout: float | None = getattr(run.spec, "timeout", None)  # per request (None: the client's)
        # per-VU clients (HTTP/2: a connection per VU), when phase.py installs a factory
        self.vu_clients: dict[int, object] | None = None
        self._vu_factory: Callable[[], object] | None = None
        self.started = 0
        self.completed = 0
        self.late = 0
        self.interrupted = 0
        self.errors = 0
        self.first_start_ns = 0
        self.last_start_ns = 0
        self.error_samples: list[str] = []  # first few iteration tracebacks / request errors
        self._request_errors: set[str] = set()

    async def run_iteration(self, vu: int, number: int, intended_ns: int, late_check: bool) -> None:
        """One iteration: record lag, run it, count its outcome; never raises (but cancellation)."""
        start = monotonic_ns()
        rec = self.recorder
        if late_check:
            lag = start - intended_ns
            rec.start_lag.append(lag)
            if lag > LATE_START_TOLERANCE_NS:
                self.late += 1
        if not self.started:
            self.first_start_ns = start
        self.last_start_ns = start
        self.started += 1
        ctx = IterationContext(self, vu, number, intended_ns, start if late_check else intended_ns)
        try:
            await self.fn(ctx)
        except asyncio.CancelledError:
            self.interrupted += 1
            raise
        except Exception as exc:  # an iteration's bug or assertion is counted, never fatal
            self.errors += 1
            rec.count("iteration_errors", error=type(exc).__name__)
            if len(self.error_samples) < 5:
                self.error_samples.append("".join(traceback.format_exception(exc, limit=-3)).strip()[-2000:])
            return
        self.completed += 1
        rec.iteration_duration.append(monotonic_ns() - start)

    def use_vu_clients(self, factory: Callable[[], object]) -> None:
        """Give each VU its own client made by ``factory`` (one HTTP/2 connection per VU)."""
        self._vu_factory = factory
        self.vu_clients = {}

    def vu_client(self, vu: int):
        client = self.vu_clients[vu] = self._vu_factory()  # type: ignore[index,misc]
        return client

    def close_clients(self) -> None:
        for client in (self.vu_clients or {}).values():
            client.close()  # type: ignore[attr-defined]
        if self.vu_clients:
            self.vu_clients.clear()

    def note_error(self, error: str) -> None:
        if len(self._request_errors) < 20:
            self._request_errors.add(error)

    def meta(self) -> dict:
        return {
            "started_iterations": self.started,
            "completed_iterations": self.completed,
            "late_starts": self.late,
            "interrupted_iterations": self.interrupted,
            "iteration_errors": self.errors,
            "iteration_error_samples": list(self.error_samples),
            "request_errors": sorted(self._request_errors),
        }
