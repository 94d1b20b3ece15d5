"""What the load saw around a fault: every request's outcome, and the recovery figures from them.

:meth:`FaultWatch.wrap` wraps a load iteration so each ``ctx.request`` is also noted here (start,
end, latency, ok, error kind). The per-request timeout is the scenario's ``timeout`` option (the
engine's default is the real agent's 30 s); ``request_timeout`` here only gives one to requests
whose iteration and scenario set none, for engines without that option.
The fault scenario (``faults/driver.py``) asks the watch, after the fault, for:

* errors during the fault, by kind (``connection_refused``, ``timeout``, ``http_503``, ...);
* the time from the fault to the first success of a request sent once the load was failing;
* the recovery time: the start of the first window (``window_s``, counted from the fault) from which
  on ``stable_windows`` consecutive windows each completed requests, none failed, and their p95
  stayed under ``p95_limit_ms`` -- or None when the load never got there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import Any

NS = 1_000_000_000


@dataclass(frozen=True)
class Outcome:
    """One request of the load, as the watch saw it (monotonic ns)."""

    start_ns: int
    end_ns: int
    ok: bool
    kind: str  # "ok", an error kind ("connection_refused", "timeout", ...) or "http_<status>"
    step: str = ""  # the request's ``step`` tag (create, list, ...), if it had one

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def outcome_kind(status: int, error: str, failed: bool) -> str:
    if status == 0:
        return (error or "connection_error").split(":", 1)[0]
    return f"http_{status}" if failed else "ok"


class ObservedContext:
    """An IterationContext whose ``request`` is also noted by the watch (everything else delegated)."""

    def __init__(self, ctx: Any, watch: FaultWatch) -> None:
        self._ctx = ctx
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None and self._watch.request_timeout is not None:
            kwargs["timeout"] = self._watch.request_timeout
        start = monotonic_ns()
        resp = await self._ctx.request(method, url, **kwargs)
        expected = kwargs.get("expected")
        status = resp.status
        failed = status == 0 or (not expected(status) if expected else not 200 <= status < 400)
        kind = outcome_kind(status, resp.error, failed)
        step = str((kwargs.get("tags") or {}).get("step", ""))
        self._watch.note(Outcome(start, monotonic_ns(), not failed, kind, step))
        for listener in self._watch.listeners:
            listener(method, url, kwargs.get("body"), resp)
        return resp


@dataclass
class FaultWatch:
    """Notes the load's requests; answers the recovery questions about one fault."""

    p95_limit_ms: float
    request_timeout: float | None = None  # None: the scenario's ``timeout`` option (engine default 30 s)
    stable_windows: int = 2
    window_s: float = 1.0  # per-second windows by default; short CI phases use shorter ones
    outcomes: list[Outcome] = field(default_factory=list)
    #: called with (method, url, body, response) after every request (accounting ledgers)
    listeners: list[Callable[[str, str, bytes | None, Any], None]] = field(default_factory=list)

    def wrap(self, iteration: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The load iteration, with its requests noted here."""

        async def observed(ctx: Any) -> None:
            await iteration(ObservedContext(ctx, self))

        observed.__name__ = getattr(iteration, "__name__", "observed")
        return observed

    def note(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    # -- the figures ------------------------------------------------------------------------------
    def errors_by_kind(self, since_ns: int, until_ns: int) -> dict[str, int]:
        """Failed requests that ended in [since, until), by kind."""
        kinds: dict[str, int] = {}
        for o in self.outcomes:
            if not o.ok and since_ns <= o.end_ns < until_ns:
                kinds[o.kind] = kinds.get(o.kind, 0) + 1
        return kinds

    def sent_between(self, since_ns: int, until_ns: int) -> list[Outcome]:
        """Requests sent in [since, until): what the fault window did to latency."""
        return [o for o in self.outcomes if since_ns <= o.start_ns < until_ns]

    def first_success_after(self, fault_ns: int) -> float | None:
        """Seconds from the fault to the end of the first success sent once the load was failing.

        A request sent just after the signal may still be served (a graceful shutdown finishes what
        it accepted), so the count starts at the first failure after the fault: the first success
        sent from then on is the service answering again. Without any failure, the first success
        sent after the fault. None: no such success.
        """
        failures = [o for o in self.outcomes if not o.ok and o.end_ns >= fault_ns]
        since = max(fault_ns, min(o.start_ns for o in failures)) if failures else fault_ns
        ends = [o.end_ns for o in self.outcomes if o.ok and o.start_ns >= since]
        return (min(ends) - fault_ns) / NS if ends else None

    def windows(self, fault_ns: int, until_ns: int) -> list[tuple[int, int, float | None]]:
        """Per window (``window_s``) from the fault: (completed, failed, p95 ms or None)."""
        width = self.window_ns
        count = max(0, math.ceil((until_ns - fault_ns) / width))
        buckets: list[list[Outcome]] = [[] for _ in range(count)]
        for o in self.outcomes:
            if fault_ns <= o.end_ns < until_ns:
                buckets[(o.end_ns - fault_ns) // width].append(o)
        rows = []
        for bucket in buckets:
            durations = sorted(o.duration_ms for o in bucket)
            p95 = durations[max(0, math.ceil(0.95 * len(durations)) - 1)] if durations else None
            rows.append((len(bucket), sum(not o.ok for o in bucket), p95))
        return rows

    def recovery_time(self, fault_ns: int, until_ns: int) -> float | None:
        """Seconds from the fault to the start of the first of ``stable_windows`` healthy windows
        (a multiple of ``window_s``: 0 when the load never noticed the fault).

        A healthy window completed at least one request, none failed, and its p95 is under the
        limit. Windows that end after ``until_ns`` (the load's end) are not judged; when fewer
        whole windows remain than ``stable_windows``, the remaining whole ones must all be healthy.
        """
        rows = self.windows(fault_ns, until_ns)
        whole = [r for i, r in enumerate(rows) if fault_ns + (i + 1) * self.window_ns <= until_ns]

        def healthy(row: tuple[int, int, float | None]) -> bool:
            done, failed, p95 = row
            return done > 0 and failed == 0 and p95 is not None and p95 < self.p95_limit_ms

        for i in range(len(whole)):
            run = whole[i : i + self.stable_windows]
            if run and all(healthy(r) for r in run):
                return i * self.window_s
        return None

    @property
    def window_ns(self) -> int:
        return max(1, round(self.window_s * NS))
