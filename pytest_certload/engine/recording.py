"""The engine's hot path into the stats Recorder: cached series, raw int64 ns appends, plain counts.

Tag sets are built once per distinct (request tags, status, error) and the series arrays behind
them are kept, so recording a request is a dict lookup plus six ``array.append`` calls. Counters
are kept as ints here and written to the Recorder once, when the phase ends (``flush``); ``pending``
reads them mid-phase without touching that path.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping

from pytest_certload.engine.http import Response
from pytest_certload.stats import Recorder, SeriesKey, TagSet, tagset

REQUEST_TRENDS = (
    "http_req_duration",
    "http_req_service_time",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_waiting",
    "client_queue_time",  # ours: how long the request waited for the generator itself
)


def status_class(status: int) -> str:
    return "error" if status == 0 else f"{status // 100}xx"


class _RequestSeries:
    __slots__ = ("connecting", "count", "duration", "failed", "queue", "service", "tags", "tls", "waiting")

    def __init__(self, recorder: Recorder, tags: TagSet) -> None:
        self.tags = tags
        self.duration, self.service, self.connecting, self.tls, self.waiting, self.queue = (
            recorder.trend(name, tags) for name in REQUEST_TRENDS
        )
        self.failed = [0, 0]  # trues, total: folded into the Recorder's rate at flush
        self.count = 0


class ScenarioRecorder:
    """Records one scenario's requests and iterations into a shared :class:`Recorder`."""

    __slots__ = ("_base", "_checks", "_counters", "_recorder", "_series", "iteration_duration", "start_lag")

    def __init__(self, recorder: Recorder, scenario: str, tags: dict[str, str] | None = None) -> None:
        self._recorder = recorder
        self._base = {**(tags or {}), "scenario": scenario}
        self._series: dict[tuple, _RequestSeries] = {}
        self._counters: Counter[tuple[str, TagSet]] = Counter()
        self._checks: dict[str, TagSet] = {}  # check name -> its tag set (built once per name)
        base = tagset(self._base)
        self.iteration_duration: array = recorder.trend("iteration_duration", base)
        # ours: how late each iteration started against its intended time (open model)
        self.start_lag: array = recorder.trend("iteration_start_lag", base)

    def request(
        self,
        resp: Response,
        duration_ns: int,
        service_ns: int,
        tags: dict[str, str] | None,
        failed: bool,
        queue_ns: int = 0,
    ) -> None:
        status = resp.status
        error = resp.error if status == 0 else ""
        key = (tuple(tags.items()) if tags else (), status, error, resp.http_version)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new_series(tags, status, key[2], key[3])
        series.duration.append(duration_ns)
        series.service.append(service_ns)
        series.connecting.append(resp.connecting_ns)
        series.tls.append(resp.tls_ns)
        series.waiting.append(resp.waiting_ns)
        series.queue.append(queue_ns)
        f = series.failed
        f[1] += 1
        if failed:
            f[0] += 1
        series.count += 1

    def _new_series(
        self, tags: dict[str, str] | None, status: int, error: str, http_version: str = "1.1"
    ) -> _RequestSeries:
        full = {
            **self._base,
            **(tags or {}),
            "status": str(status),
            "status_class": status_class(status),
            "http_version": http_version,
        }
        if error:
            full["error"] = error.split(":", 1)[0]  # the tag is the error kind; details go to meta
        return _RequestSeries(self._recorder, tagset(full))

    def count(self, name: str, n: int = 1, **extra: str) -> None:
        """A per-scenario counter (iterations, dropped_iterations, late_starts, ...)."""
        tags = tagset({**self._base, **extra}) if extra else tagset(self._base)
        self._counters[(name, tags)] += n

    def trend(self, name: str, value_ns: int, tags: dict[str, str] | None = None) -> None:
        """A custom trend value, tagged like the scenario's requests."""
        full = tagset({**self._base, **tags}) if tags else tagset(self._base)
        self._recorder.add_trend(name, full, value_ns)

    def rate(self, name: str, hit: bool, tags: dict[str, str] | None = None) -> None:
        full = tagset({**self._base, **tags}) if tags else tagset(self._base)
        self._recorder.add_rate(name, full, hit)

    def check(self, name: str, hit: bool) -> None:
        """k6's ``checks`` rate, tagged with the check's name (``checks{check:<name>}``)."""
        tags = self._checks.get(name)
        if tags is None:
            tags = self._checks[name] = tagset({**self._base, "check": name})
        self._recorder.add_rate("checks", tags, hit)

    def pending(
        self, extra: Mapping[str, float] | None = None
    ) -> tuple[dict[SeriesKey, float], dict[SeriesKey, tuple[int, int]]]:
        """What ``flush`` would write now, as (counters, rates), without resetting anything.

        For mid-phase snapshots (abortOnFail). ``extra`` adds per-scenario counts kept elsewhere
        (iterations, dropped_iterations, ...) under the scenario's tags, as the phase end does.
        """
        counters: dict[SeriesKey, float] = {}
        rates: dict[SeriesKey, tuple[int, int]] = {}
        for series in self._series.values():
            if series.count:
                counters[("http_reqs", series.tags)] = series.count
                trues, total = series.failed
                rates[("http_req_failed", series.tags)] = (trues, total)
        for key, n in self._counters.items():
            counters[key] = counters.get(key, 0) + n
        if extra:
            base = tagset(self._base)
            for name, n in extra.items():
                counters[(name, base)] = counters.get((name, base), 0) + n
        return counters, rates

    def flush(self) -> None:
        """Write counts and rates into the Recorder (once, at phase end)."""
        rec = self._recorder
        for series in self._series.values():
            if series.count:
                rec.add_counter("http_reqs", series.tags, series.count)
                trues, total = series.failed
                rec.add_rate_counts("http_req_failed", series.tags, trues, total)
                series.count = 0
                series.failed = [0, 0]
        for (name, tags), n in self._counters.items():
            rec.add_counter(name, tags, n)
        self._counters.clear()
