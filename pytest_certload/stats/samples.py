"""A load phase's results as plain data: mergeable, serialisable, queried by tag filter.

Series are stored per *full* tag set. A sub-metric such as ``http_req_duration{scenario:x}``
is the union of every series whose tags include ``scenario=x``, so any filter is exact and
nothing has to be declared before the run. Merging concatenates samples, so the percentiles of a
merged result are exactly those of the pooled samples — never an average of percentiles.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

TagSet = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, TagSet]

# k6's trend statistics plus p(90)/p(99.9); percentiles by linear interpolation (numpy's default).
PERCENTILES = {"med": 50.0, "p(90)": 90.0, "p(95)": 95.0, "p(99)": 99.0, "p(99.9)": 99.9}
NS_PER_MS = 1_000_000


def tagset(tags: Mapping[str, object] | None = None) -> TagSet:
    """A canonical (sorted, stringified) tag set."""
    if not tags:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in tags.items()))


def matches(tags: TagSet, wanted: Mapping[str, str] | None) -> bool:
    """True when every ``key: value`` of ``wanted`` is among ``tags``."""
    if not wanted:
        return True
    have = dict(tags)
    return all(have.get(k) == str(v) for k, v in wanted.items())


def percentile_stats(values_ns: np.ndarray) -> dict[str, float]:
    """k6-style trend values in milliseconds, plus the sample count."""
    count = int(values_ns.size)
    if count == 0:
        return {"count": 0}
    values = values_ns.astype(np.float64) / NS_PER_MS
    qs = np.percentile(values, list(PERCENTILES.values()))
    out = {
        "count": count,
        "avg": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
    }
    out.update({name: float(q) for name, q in zip(PERCENTILES, qs, strict=True)})
    return out


@dataclass
class PhaseSamples:
    """Everything one or more generator processes recorded in a phase."""

    trends: dict[SeriesKey, np.ndarray] = field(default_factory=dict)  # int64 ns
    rates: dict[SeriesKey, tuple[int, int]] = field(default_factory=dict)  # (trues, total)
    counters: dict[SeriesKey, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # -- queries -----------------------------------------------------------------------------

    def metric_names(self) -> dict[str, str]:
        """Metric name -> k6 type ('trend', 'rate', 'counter')."""
        names: dict[str, str] = {}
        for kind, store in (("trend", self.trends), ("rate", self.rates), ("counter", self.counters)):
            for name, _ in store:
                names.setdefault(name, kind)
        return names

    def tag_values(self, key: str) -> set[str]:
        """Every value a tag takes anywhere in the result (e.g. all scenarios)."""
        values: set[str] = set()
        for store in (self.trends, self.rates, self.counters):
            for _, tags in store:
                values.update(v for k, v in tags if k == key)
        return values

    def select_trend(self, name: str, wanted: Mapping[str, str] | None = None) -> np.ndarray:
        parts = [v for (n, tags), v in self.trends.items() if n == name and matches(tags, wanted)]
        if not parts:
            return np.empty(0, dtype=np.int64)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def select_rate(self, name: str, wanted: Mapping[str, str] | None = None) -> tuple[int, int]:
        trues = total = 0
        for (n, tags), (t, tot) in self.rates.items():
            if n == name and matches(tags, wanted):
                trues += t
                total += tot
        return trues, total

    def select_counter(self, name: str, wanted: Mapping[str, str] | None = None) -> float:
        return sum(v for (n, tags), v in self.counters.items() if n == name and matches(tags, wanted))

    def trend_stats(self, name: str, wanted: Mapping[str, str] | None = None) -> dict[str, float]:
        return percentile_stats(self.select_trend(name, wanted))

    # -- merging -----------------------------------------------------------------------------

    @classmethod
    def merge(cls, results: Iterable[PhaseSamples]) -> PhaseSamples:
        """Pool the samples of several results (xdist workers, several phases)."""
        results = list(results)
        trend_parts: dict[SeriesKey, list[np.ndarray]] = {}
        rates: dict[SeriesKey, tuple[int, int]] = {}
        counters: dict[SeriesKey, float] = {}
        for r in results:
            for k, v in r.trends.items():
                trend_parts.setdefault(k, []).append(v)
            for k, (t, tot) in r.rates.items():
                pt, ptot = rates.get(k, (0, 0))
                rates[k] = (pt + t, ptot + tot)
            for k, v in r.counters.items():
                counters[k] = counters.get(k, 0) + v
        trends = {k: (v[0] if len(v) == 1 else np.concatenate(v)) for k, v in trend_parts.items()}
        return cls(trends, rates, counters, {"parts": [r.meta for r in results]})

    # -- serialisation (JSON-safe; used to move results between xdist workers and the controller)

    def to_dict(self) -> dict:
        def key(k: SeriesKey) -> dict:
            return {"name": k[0], "tags": [list(t) for t in k[1]]}

        return {
            "trends": [
                {**key(k), "ns": base64.b64encode(v.astype("<i8").tobytes()).decode("ascii")}
                for k, v in self.trends.items()
            ],
            "rates": [{**key(k), "trues": t, "total": tot} for k, (t, tot) in self.rates.items()],
            "counters": [{**key(k), "value": v} for k, v in self.counters.items()],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> PhaseSamples:
        def key(d: Mapping) -> SeriesKey:
            return d["name"], tuple((str(a), str(b)) for a, b in d["tags"])

        return cls(
            trends={
                key(d): np.frombuffer(base64.b64decode(d["ns"]), dtype="<i8").astype(np.int64)
                for d in data.get("trends", [])
            },
            rates={key(d): (int(d["trues"]), int(d["total"])) for d in data.get("rates", [])},
            counters={key(d): d["value"] for d in data.get("counters", [])},
            meta=dict(data.get("meta", {})),
        )
