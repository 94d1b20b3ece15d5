"""Per-second marks of a load phase: where each second ends in the raw sample arrays, plus counts.

The hot path is not touched. Once a second the phase's clock (``engine/phase.py``) notes how many
values every trend series holds (``len`` of its append-only ``array('q')``), the cumulative counts
and rates the engine keeps, process CPU and that second's event-loop lag (:meth:`TimelineRecorder.mark`).
Values are appended in completion order, so second ``k`` of a series is ``values[mark[k-1]:mark[k]]``:
exact per-second percentiles of ``http_req_duration`` and ``http_req_service_time`` come from the
raw samples after the phase. A mark costs tens of microseconds of loop time once a second
(``benchmarks/bench_progress.py``); memory is one int per series and second (a 5-minute phase with
40 series: 12,000 ints), written to ``PhaseSamples.meta["timeline"]`` (JSON-safe, so it travels with
the samples to the xdist controller and into saved runs).

:class:`Timeline` is the read side. Every xdist share of a phase starts at the same instant, so
share i's second k is everyone's second k; a merged phase pools second k of every share (each share's
values are one contiguous run of the merged array, in the order of ``meta["parts"]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_certload.stats.samples import PhaseSamples, SeriesKey, TagSet, matches

TIMELINE_KEY = "timeline"
_SHORT_TAIL_S = 0.5  # a last interval shorter than this joins the second before it


class TimelineRecorder:
    """Cumulative marks taken once a second during a phase (and once more at its end)."""

    __slots__ = ("_lags_taken", "at", "counters", "generator", "rates", "trends")

    def __init__(self) -> None:
        self.at: list[float] = []  # seconds since the phase's time zero, one per mark
        self.trends: dict[SeriesKey, list[int]] = {}  # values held at each mark
        self.counters: dict[SeriesKey, list[float]] = {}  # cumulative count at each mark
        self.rates: dict[SeriesKey, tuple[list[int], list[int]]] = {}  # cumulative (trues, total)
        self.generator: dict[str, list[float]] = {"cpu_s": [], "lag_p99_ms": [], "lag_max_ms": []}
        self._lags_taken = 0

    def mark(
        self,
        elapsed_s: float,
        trends: Mapping[SeriesKey, Sized],
        counters: Mapping[SeriesKey, float],
        rates: Mapping[SeriesKey, tuple[int, int]],
        cpu_s: float,
        lags_ns: Any = (),
    ) -> None:
        """Note where every series stands now (on the event loop: only lengths and small dicts)."""
        i = len(self.at)
        self.at.append(round(elapsed_s, 4))
        for key, values in trends.items():
            _append(self.trends, key, i, len(values), 0)
        for key, value in counters.items():
            _append(self.counters, key, i, value, 0)
        for key, (trues, total) in rates.items():
            pair = self.rates.get(key)
            if pair is None:
                pair = self.rates[key] = ([0] * i, [0] * i)
            pair[0].append(trues)
            pair[1].append(total)
        for store in (self.trends, self.counters):  # a series not reported this time keeps its value
            for marks in store.values():
                if len(marks) == i:
                    marks.append(marks[-1] if marks else 0)
        for trues, total in self.rates.values():
            if len(trues) == i:
                trues.append(trues[-1] if trues else 0)
                total.append(total[-1] if total else 0)
        tail = sorted(lags_ns[self._lags_taken :])  # ~100 ticks of 10 ms: plain Python is cheapest
        self._lags_taken += len(tail)
        p99 = tail[min(len(tail) - 1, int(0.99 * len(tail)))] / 1e6 if tail else 0.0
        worst = tail[-1] / 1e6 if tail else 0.0
        self.generator["cpu_s"].append(round(cpu_s, 6))
        self.generator["lag_p99_ms"].append(round(p99, 3))
        self.generator["lag_max_ms"].append(round(worst, 3))

    def latest_counter(self, name: str, wanted: Mapping[str, str] | None = None) -> float:
        return sum(
            v[-1] for (n, tags), v in self.counters.items() if n == name and v and matches(tags, wanted)
        )

    def latest_rate(self, name: str, wanted: Mapping[str, str] | None = None) -> tuple[int, int]:
        trues = total = 0
        for (n, tags), (t, tot) in self.rates.items():
            if n == name and t and matches(tags, wanted):
                trues += t[-1]
                total += tot[-1]
        return trues, total

    def to_meta(self) -> dict[str, Any]:
        """The JSON-safe form kept in ``PhaseSamples.meta["timeline"]``."""

        def key(k: SeriesKey) -> dict[str, Any]:
            return {"name": k[0], "tags": [list(t) for t in k[1]]}

        return {
            "version": 1,
            "at": list(self.at),
            "trends": [{**key(k), "n": list(v)} for k, v in self.trends.items()],
            "counters": [{**key(k), "v": list(v)} for k, v in self.counters.items()],
            "rates": [{**key(k), "trues": list(t), "total": list(n)} for k, (t, n) in self.rates.items()],
            "generator": {k: list(v) for k, v in self.generator.items()},
        }


def _append(store: dict, key: SeriesKey, i: int, value: float, before: float) -> None:
    marks = store.get(key)
    if marks is None:
        marks = store[key] = [before] * i
    marks.append(value)


def _key(entry: Mapping[str, Any]) -> SeriesKey:
    tags: TagSet = tuple((str(a), str(b)) for a, b in entry["tags"])
    return entry["name"], tags


@dataclass
class _Part:
    """One process's marks: the interval each mark closes, mapped to whole seconds."""

    meta: Mapping[str, Any]
    offsets: dict[SeriesKey, int] = field(default_factory=dict)  # where its values start when merged
    bins: list[int] = field(default_factory=list)  # second of each mark's interval
    widths: list[float] = field(default_factory=list)  # the interval's length in seconds

    def __post_init__(self) -> None:
        at = [float(a) for a in self.meta["at"]]
        start = 0.0
        for i, end in enumerate(at):
            short_tail = i == len(at) - 1 and i > 0 and end - start < _SHORT_TAIL_S
            self.bins.append(self.bins[-1] if short_tail else max(0, math.floor((start + end) / 2)))
            self.widths.append(max(end - start, 1e-3))
            start = end


def _leaf_metas(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-process metas of a (possibly merged) phase, in the order its samples were pooled."""
    if TIMELINE_KEY in meta:
        return [meta]
    return [leaf for part in meta.get("parts") or [] for leaf in _leaf_metas(part)]


class Timeline:
    """Per-second views of one phase's samples (one process's, or every xdist share's merged)."""

    def __init__(self, samples: PhaseSamples, parts: list[_Part]) -> None:
        self.samples = samples
        self.parts = parts
        self.seconds = 1 + max((max(p.bins) for p in parts if p.bins), default=0)

    @classmethod
    def of(cls, samples: PhaseSamples) -> Timeline | None:
        """The timeline of a phase, or None when its samples carry no (consistent) marks."""
        leaves = _leaf_metas(samples.meta)
        if not leaves or any(not isinstance(m.get(TIMELINE_KEY), Mapping) for m in leaves):
            return None
        parts = [_Part(m[TIMELINE_KEY]) for m in leaves]
        totals: dict[SeriesKey, int] = {}
        for part in parts:
            for entry in part.meta.get("trends", []):
                key = _key(entry)
                part.offsets[key] = totals.get(key, 0)
                totals[key] = totals.get(key, 0) + (int(entry["n"][-1]) if entry["n"] else 0)
        if any(totals.get(k, 0) != len(v) for k, v in samples.trends.items()):
            return None  # the marks do not describe these arrays (e.g. samples of several phases)
        return cls(samples, parts)

    @property
    def x(self) -> np.ndarray:
        """Second of each bin (0 = the first second after the phase's time zero)."""
        return np.arange(self.seconds, dtype=np.float64)

    def trend(self, name: str, wanted: Mapping[str, str] | None = None) -> list[np.ndarray]:
        """Each second's values (int64 ns) of every series of ``name`` matching ``wanted``."""
        pieces: list[list[np.ndarray]] = [[] for _ in range(self.seconds)]
        for part in self.parts:
            for entry in part.meta.get("trends", []):
                key = _key(entry)
                if key[0] != name or not matches(key[1], wanted) or key not in self.samples.trends:
                    continue
                values = self.samples.trends[key]
                base, previous = part.offsets[key], 0
                for b, mark in zip(part.bins, entry["n"], strict=False):
                    if mark > previous:
                        pieces[b].append(values[base + previous : base + mark])
                    previous = mark
        return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in pieces]

    def percentiles(self, name: str, qs: tuple[float, ...], wanted: Mapping[str, str] | None = None) -> dict:
        """Per second: ``{q: array of ms (NaN where a second has no values)}`` and ``count``."""
        per_second = self.trend(name, wanted)
        out = {q: np.full(self.seconds, np.nan) for q in qs}
        count = np.zeros(self.seconds)
        for i, values in enumerate(per_second):
            if values.size:
                count[i] = values.size
                for q, v in zip(qs, np.percentile(values / 1e6, qs), strict=True):
                    out[q][i] = v
        return {**out, "count": count}

    def counter(self, name: str, wanted: Mapping[str, str] | None = None) -> np.ndarray:
        """What each second added to the counters of ``name`` matching ``wanted``."""
        out = np.zeros(self.seconds)
        for part in self.parts:
            for entry in part.meta.get("counters", []):
                key = _key(entry)
                if key[0] == name and matches(key[1], wanted):
                    _add_increments(out, part.bins, entry["v"])
        return out

    def rate(self, name: str, wanted: Mapping[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per second: (hits, observations) of the rate ``name`` matching ``wanted``."""
        trues, total = np.zeros(self.seconds), np.zeros(self.seconds)
        for part in self.parts:
            for entry in part.meta.get("rates", []):
                key = _key(entry)
                if key[0] == name and matches(key[1], wanted):
                    _add_increments(trues, part.bins, entry["trues"])
                    _add_increments(total, part.bins, entry["total"])
        return trues, total

    def counter_by_tag(self, name: str, tag: str, wanted: Mapping[str, str] | None = None) -> dict:
        """Per second, split by the values of ``tag`` (e.g. ``http_reqs`` by ``status_class``)."""
        values = sorted({dict(key[1]).get(tag) for key in self.samples.counters if key[0] == name} - {None})
        return {v: self.counter(name, {**(wanted or {}), tag: v}) for v in values}

    def widths(self) -> np.ndarray:
        """Seconds each bin really covered (the last is usually shorter or longer; max over parts)."""
        out = np.zeros(self.seconds)
        for part in self.parts:
            covered = np.zeros(self.seconds)
            np.add.at(covered, part.bins, part.widths)
            np.maximum(out, covered, out=out)
        out[out <= 0] = 1.0
        return out

    def generator(self) -> dict[str, list[np.ndarray]]:
        """Per process (xdist: per worker): CPU as a fraction of one core, lag p99 and max in ms."""
        out: dict[str, list[np.ndarray]] = {"cpu": [], "lag_p99_ms": [], "lag_max_ms": []}
        for part in self.parts:
            gen = part.meta.get("generator") or {}
            cpu_s = [float(c) for c in gen.get("cpu_s", [])]  # cumulative since time zero
            busy, seconds = np.zeros(self.seconds), np.zeros(self.seconds)
            previous = 0.0
            for b, w, c in zip(part.bins, part.widths, cpu_s, strict=False):
                busy[b] += c - previous
                seconds[b] += w
                previous = c
            cpu = np.full(self.seconds, np.nan)
            cpu[seconds > 0] = busy[seconds > 0] / seconds[seconds > 0]
            out["cpu"].append(cpu)
            for name in ("lag_p99_ms", "lag_max_ms"):
                series = np.full(self.seconds, np.nan)
                for b, v in zip(part.bins, gen.get(name, []), strict=False):
                    series[b] = v if np.isnan(series[b]) else max(series[b], v)
                out[name].append(series)
        return out


def _add_increments(out: np.ndarray, bins: list[int], cumulative: list[float]) -> None:
    previous = 0.0
    for b, value in zip(bins, cumulative, strict=False):
        out[b] += value - previous
        previous = value
