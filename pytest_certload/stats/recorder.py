"""The hot-path recorder: append raw int64 nanoseconds, count hits, nothing else.

Appending one int64 to an ``array('q')`` costs ~0.07 µs here (../shared/performance-notes.md),
an order of magnitude below any histogram insert, and keeps percentiles exact.

Memory bound: 8 bytes per recorded trend value (the engine records about six trend values per
request), so a 5-minute phase at 1,000 req/s holds ~14 MB; the engine bounds every phase in count
and time, which bounds this too. Rates and counters are O(number of distinct tag sets).
"""

from __future__ import annotations

from array import array

import numpy as np

from pytest_certload.stats.samples import PhaseSamples, SeriesKey, TagSet


class Recorder:
    """Collects one process's samples for one load phase, keyed by (metric name, full tag set)."""

    __slots__ = ("counters", "rates", "trends")

    def __init__(self) -> None:
        self.trends: dict[SeriesKey, array] = {}
        self.rates: dict[SeriesKey, list[int]] = {}  # [trues, total]
        self.counters: dict[SeriesKey, float] = {}

    def trend(self, name: str, tags: TagSet) -> array:
        """The array behind one series (hot paths may keep it and call ``.append`` directly)."""
        key = (name, tags)
        series = self.trends.get(key)
        if series is None:
            series = self.trends[key] = array("q")
        return series

    def add_trend(self, name: str, tags: TagSet, value_ns: int) -> None:
        self.trend(name, tags).append(value_ns)

    def add_rate(self, name: str, tags: TagSet, hit: bool) -> None:
        key = (name, tags)
        counts = self.rates.get(key)
        if counts is None:
            counts = self.rates[key] = [0, 0]
        counts[0] += 1 if hit else 0
        counts[1] += 1

    def add_rate_counts(self, name: str, tags: TagSet, trues: int, total: int) -> None:
        """Add pre-counted observations (``trues`` hits out of ``total``)."""
        key = (name, tags)
        counts = self.rates.get(key)
        if counts is None:
            counts = self.rates[key] = [0, 0]
        counts[0] += trues
        counts[1] += total

    def add_counter(self, name: str, tags: TagSet, n: float = 1) -> None:
        key = (name, tags)
        self.counters[key] = self.counters.get(key, 0) + n

    def samples(self, meta: dict | None = None) -> PhaseSamples:
        """A :class:`PhaseSamples` holding copies of everything recorded so far (safe mid-phase)."""
        return PhaseSamples(
            trends={k: np.array(v, dtype=np.int64) for k, v in self.trends.items()},
            rates={k: (v[0], v[1]) for k, v in self.rates.items()},
            counters=dict(self.counters),
            meta=dict(meta or {}),
        )
