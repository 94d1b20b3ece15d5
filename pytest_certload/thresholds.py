"""k6 threshold grammar: parse at collection time, evaluate on a PhaseSamples.

A threshold set is what k6 calls ``options.thresholds``::

    {"http_req_duration{scenario:list_certificates}": ["p(99)<2s", "p(95)<800"],
     "http_req_failed": [{"threshold": "rate<0.01", "abortOnFail": True, "delayAbortEval": "10s"}]}

Parsing is strict and happens before anything runs, so a typo is a usage error, never a surprise
mid-run. Evaluation checks every threshold (not just the first breach) and, unlike k6, never lets an
empty sub-metric pass: a filter that selected nothing fails with "no samples". The exceptions, chosen
so a healthy run does not fail for being healthy:

* counters are exact: a counter with no increments *is* 0, so ``count==0`` on an empty selection passes
  (for the engine's own counters; a custom metric that was never recorded fails, as it may be a typo);
* a rate over 0 matching requests is 0.0 (``http_req_failed{status_class:5xx}: rate<0.01`` passes when
  no request answered 5xx) -- but only when the scenario (or the phase) did send requests and every tag
  key of the filter is recorded on that metric somewhere.
  A filter on a tag key nothing ever sets (the original harness's ``server_error:true``) fails for every
  metric type, because it can only ever be vacuous.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pytest_certload.serverside.derived import SERVER_METRICS, server_metric
from pytest_certload.stats.samples import NS_PER_MS

MetricType = Literal["trend", "rate", "counter"]

#: Metrics the engine records, with their types (see ARCHITECTURE.md "Metric names").
KNOWN_METRICS: dict[str, MetricType] = {
    "http_req_duration": "trend",
    "http_req_service_time": "trend",
    "http_req_connecting": "trend",
    "http_req_tls_handshaking": "trend",
    "http_req_waiting": "trend",
    "iteration_duration": "trend",
    "http_req_failed": "rate",
    "checks": "rate",  # k6's check() results, tagged check=<name> (IterationContext.check)
    "http_reqs": "counter",
    "iterations": "counter",
    "dropped_iterations": "counter",
    "late_starts": "counter",
    # server-side figures of the phase (serverside/derived.py): avg/min/med/max/p(N) over their values
    **{name: "trend" for name in SERVER_METRICS},
}

GRAMMAR = """\
thresholds = {METRIC_KEY: [EXPR | {"threshold": EXPR, "abortOnFail": bool, "delayAbortEval": DURATION}]}
  METRIC_KEY = metric_name | metric_name{tag:value[,tag:value...]}   e.g. http_req_duration{scenario:x}
  EXPR       = AGG OP NUMBER[UNIT]                                     e.g. p(95)<500, p(99)<1s, rate<0.01
  AGG        = avg | min | med | max | p(N) with 0<=N<=100   (trend metrics)
             | rate                                          (rate metrics; per second on counters)
             | count                                         (counter metrics)
  OP         = < | <= | > | >= | == | === | !=
  UNIT       = us | µs | ms | s | m | h   (trends only; a bare number on a trend is milliseconds, as in k6)
  DURATION   = e.g. 10s, 1m30s, 500ms  (snake_case keys abort_on_fail / delay_abort_eval are accepted too)"""

_TREND_AGGS = ("avg", "min", "med", "max")
_UNIT_MS = {"us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)  # ASCII: "p(٩٥)" is not p(95)
_EXPR_RE = re.compile(
    r"^\s*(?P<agg>avg|min|med|max|rate|count|p\(\s*(?P<pct>" + _NUMBER + r")\s*\))"
    r"\s*(?P<op>===|==|!=|<=|>=|<|>)"
    r"\s*(?P<num>" + _NUMBER + r")\s*(?P<unit>us|µs|μs|ms|s|m|h)?\s*$",
    re.ASCII,
)
_METRIC_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_KEY_RE = re.compile(r"^\s*(?P<name>[^{}\s]+)\s*(?:\{(?P<tags>[^{}]*)\})?\s*$")
_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_PART_RE = re.compile(r"(" + _UNSIGNED + r")(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_DURATION_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_OBJECT_KEYS = {
    "threshold": "threshold",
    "abortOnFail": "abort_on_fail",
    "abort_on_fail": "abort_on_fail",
    "delayAbortEval": "delay_abort_eval",
    "delay_abort_eval": "delay_abort_eval",
}


_NO_TEXT: Any = object()  # ThresholdError without offending text (None is a text: {None: [...]})


class ThresholdError(ValueError):
    """A threshold set that cannot be parsed; the message names the offending text and the grammar."""

    def __init__(self, problem: str, text: object = _NO_TEXT) -> None:
        self.problem = problem
        self.text = None if text is _NO_TEXT else text
        where = "" if text is _NO_TEXT else f" in {text!r}"
        super().__init__(f"invalid threshold{where}: {problem}\naccepted grammar:\n{GRAMMAR}")


@dataclass(frozen=True)
class MetricKey:
    """``name{k:v,...}``; ``tags`` is the filter as a sorted tuple of (key, value) pairs."""

    name: str
    tags: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        if not self.tags:
            return self.name
        return self.name + "{" + ",".join(f"{k}:{v}" for k, v in self.tags) + "}"

    def with_tag(self, key: str, value: str) -> MetricKey:
        """The key narrowed by one more tag, unless it already filters on that tag key."""
        if any(k == key for k, _ in self.tags):
            return self
        return MetricKey(self.name, tuple(sorted((*self.tags, (key, value)))))

    @property
    def filter(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(frozen=True)
class Threshold:
    """One parsed expression on one metric key."""

    key: MetricKey
    expression: str  # as written, whitespace-trimmed (the summary's key)
    aggregation: str  # avg, min, med, max, p(N), rate, count
    percentile: float | None
    op: str
    limit: float  # milliseconds for trends, a fraction for rates, a count (or count/s) for counters
    metric_type: MetricType | None  # None: unknown metric, decided by the data at evaluation
    abort_on_fail: bool = False
    delay_abort_eval_s: float = 0.0

    def compare(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.limit)

    def scoped(self, scenario: str) -> Threshold:
        """The same threshold restricted to one scenario's samples (per-scenario thresholds)."""
        return Threshold(**{**self.__dict__, "key": self.key.with_tag("scenario", scenario)})


@dataclass(frozen=True)
class Verdict:
    """The outcome of one threshold: what was seen, against what, over how many samples."""

    metric_key: str
    expression: str
    ok: bool
    observed: float | None
    limit: float
    count: int
    reason: str = ""  # why it failed when no value could be compared ("no samples", type mismatch)
    unit: str = ""  # "ms" for trends, "" for rates, "/s" for counter rates

    def describe(self) -> str:
        observed = "n/a" if self.observed is None else f"{_fmt(self.observed)}{self.unit}"
        limit = f"{_fmt(self.limit)}{self.unit}"
        text = (
            f"{self.metric_key}: {self.expression} -> observed {observed}, limit {limit}, count {self.count}"
        )
        return f"{text} ({self.reason})" if self.reason else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric_key,
            "expression": self.expression,
            "ok": self.ok,
            "observed": self.observed,
            "limit": self.limit,
            "count": self.count,
            "reason": self.reason,
            "unit": self.unit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            metric_key=data["metric"],
            expression=data["expression"],
            ok=data["ok"],
            observed=data["observed"],
            limit=data["limit"],
            count=data["count"],
            reason=data.get("reason", ""),
            unit=data.get("unit", ""),
        )


@dataclass(frozen=True)
class ThresholdSet:
    """Every threshold of one scenario (or one phase), in declaration order."""

    thresholds: tuple[Threshold, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)  # as given, for the summary's options

    def __bool__(self) -> bool:
        return bool(self.thresholds)

    def __iter__(self):
        return iter(self.thresholds)

    def __len__(self) -> int:
        return len(self.thresholds)

    def scoped(self, scenario: str) -> ThresholdSet:
        return ThresholdSet(tuple(t.scoped(scenario) for t in self.thresholds), self.source)

    def keys(self) -> list[str]:
        """Distinct metric keys, in declaration order."""
        return list(dict.fromkeys(str(t.key) for t in self.thresholds))

    @property
    def has_abort(self) -> bool:
        return any(t.abort_on_fail for t in self.thresholds)


def _fmt(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _unquoted(text: str) -> str:
    """Spaces and quotes trimmed until none is left at either end, so str(key) reads back the same."""
    while (trimmed := text.strip().strip("\"'")) != text:
        text = trimmed
    return text


def parse_metric_key(text: str) -> MetricKey:
    """``http_req_duration{scenario:x,status_class:5xx}`` -> MetricKey."""
    if not isinstance(text, str) or not text.strip():
        raise ThresholdError("metric key must be a non-empty string like http_req_duration{scenario:x}", text)
    match = _KEY_RE.match(text)
    if not match:
        raise ThresholdError(
            "metric key must look like name or name{tag:value,...} (one pair of braces)", text
        )
    name = match["name"]
    if not _METRIC_NAME_RE.match(name):
        raise ThresholdError(f"metric name {name!r} must be letters, digits, '_', '.' or '-'", text)
    tags: dict[str, str] = {}
    if match["tags"] is not None:
        if not match["tags"].strip():
            raise ThresholdError("empty tag filter {}: drop the braces or name a tag:value", text)
        for pair in match["tags"].split(","):
            k, sep, v = pair.partition(":")
            k, v = _unquoted(k), _unquoted(v)
            if not sep or not k or not v:
                raise ThresholdError(f"tag filter entry {pair.strip()!r} must be tag:value", text)
            if k in tags:
                raise ThresholdError(f"tag {k!r} appears twice in the filter", text)
            tags[k] = v
    return MetricKey(name, tuple(sorted(tags.items())))


def parse_duration_s(value: object, what: str = "duration") -> float:
    """k6/Go durations ('10s', '1m30s', '500ms') or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ThresholdError(f"{what} must be a duration like '10s', not a bool", value)
    if isinstance(value, int | float):
        seconds = float(value) if not isinstance(value, int) or abs(value) < 2**1000 else math.inf
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if _NUMBER_RE.fullmatch(text):
            seconds = float(text)
        else:
            sign = -1.0 if text.startswith("-") else 1.0  # one sign for the whole duration, as Go's
            body = text[1:] if text[:1] in "+-" else text
            parts = _DURATION_PART_RE.findall(body)
            if not parts or "".join(n + u for n, u in parts) != body:
                raise ThresholdError(f"{what} must be a duration like '10s', '1m30s' or '500ms'", value)
            seconds = sign * sum(float(n) * _DURATION_UNIT_S[u] for n, u in parts)
    else:
        raise ThresholdError(f"{what} must be a duration like '10s'", value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ThresholdError(f"{what} must be a finite, non-negative duration", value)
    return seconds


def _type_for_aggregation(agg: str) -> set[MetricType]:
    if agg == "rate":
        return {"rate", "counter"}
    if agg == "count":
        return {"counter"}
    return {"trend"}


def parse_expression(key: MetricKey, text: object, metric_type: MetricType | None) -> Threshold:
    """One expression such as ``p(95)<500`` on ``key``; ``metric_type`` None means not known yet."""
    if not isinstance(text, str):
        raise ThresholdError(f"expression on {key} must be a string like 'p(95)<500'", text)
    match = _EXPR_RE.match(text)
    if not match:
        hint = ""
        if "%" in text:
            hint = " (a rate is a fraction: write 1% as 0.01)"
        elif re.search(r"\bp\s*\d", text) or "p[" in text:
            hint = " (percentiles are written p(95))"
        elif re.search(r"(?<![<>=!])=(?!=)", text):
            hint = " (equality is ==)"
        elif re.search(r"\d\s*[A-Za-z]+\s*$", text):
            hint = " (units are us, µs, ms, s, m, h)"
        raise ThresholdError(f"cannot parse expression on {key}{hint}", text)
    agg, op, unit = match["agg"], match["op"], match["unit"]
    percentile = None
    if match["pct"] is not None:
        percentile = float(match["pct"])
        if not 0 <= percentile <= 100:
            raise ThresholdError(f"percentile must be between 0 and 100, got {match['pct']}", text)
        agg = f"p({match['pct'].strip()})"
    limit = float(match["num"])
    allowed = _type_for_aggregation(match["agg"])
    if metric_type is not None and metric_type not in allowed:
        kinds = {"trend": "avg, min, med, max, p(N)", "rate": "rate", "counter": "count, rate (per second)"}
        raise ThresholdError(
            f"{agg} does not apply to {key.name}, a {metric_type} metric (use {kinds[metric_type]})", text
        )
    if unit is not None:
        if allowed != {"trend"}:
            raise ThresholdError(f"a unit ({unit}) only applies to time trends, not to {match['agg']}", text)
        limit *= _UNIT_MS[unit]
    if not math.isfinite(limit):  # after the unit: 1e308h overflows
        raise ThresholdError("limit must be a finite number", text)
    if match["agg"] == "rate" and metric_type == "rate" and not 0 <= limit <= 1:
        raise ThresholdError(f"a rate is a fraction between 0 and 1, got {match['num']}", text)
    return Threshold(
        key=key,
        expression=text.strip(),
        aggregation=agg,
        percentile=percentile,
        op=op,
        limit=limit,
        metric_type=metric_type,
    )


def _parse_entry(key: MetricKey, entry: object, metric_type: MetricType | None) -> Threshold:
    if isinstance(entry, str):
        return parse_expression(key, entry, metric_type)
    if not isinstance(entry, Mapping):
        raise ThresholdError(
            f"each threshold on {key} must be an expression string or a dict with 'threshold'", entry
        )
    options: dict[str, Any] = {}
    for raw_key, value in entry.items():
        name = _OBJECT_KEYS.get(raw_key)
        if name is None:
            raise ThresholdError(
                f"unknown key {raw_key!r} in threshold object on {key} "
                "(allowed: threshold, abortOnFail, delayAbortEval)",
                dict(entry),
            )
        if name in options:
            raise ThresholdError(f"{raw_key!r} given twice (camelCase and snake_case) on {key}", dict(entry))
        options[name] = value
    if "threshold" not in options:
        raise ThresholdError(f"threshold object on {key} needs a 'threshold' expression", dict(entry))
    threshold = parse_expression(key, options["threshold"], metric_type)
    abort = options.get("abort_on_fail", False)
    if not isinstance(abort, bool):
        raise ThresholdError(f"abortOnFail on {key} must be true or false", dict(entry))
    delay = parse_duration_s(options.get("delay_abort_eval", 0), "delayAbortEval")
    if delay and not abort:
        raise ThresholdError(f"delayAbortEval on {key} has no effect without abortOnFail: true", dict(entry))
    return Threshold(**{**threshold.__dict__, "abort_on_fail": abort, "delay_abort_eval_s": delay})


def parse_thresholds(spec: object, metric_types: Mapping[str, MetricType] | None = None) -> ThresholdSet:
    """Parse a whole ``thresholds`` mapping; raises :class:`ThresholdError` on the first problem.

    ``metric_types`` adds custom metrics (e.g. an iteration's own trend) to :data:`KNOWN_METRICS`.
    Unknown metrics are accepted when all their expressions agree on one type.
    """
    if spec is None:
        return ThresholdSet()
    if not isinstance(spec, Mapping):
        raise ThresholdError("thresholds must be a dict {metric_key: [expressions]}", spec)
    types = {**KNOWN_METRICS, **(metric_types or {})}
    parsed: list[Threshold] = []
    seen: set[tuple[str, str]] = set()
    for raw_key, entries in spec.items():
        key = parse_metric_key(raw_key)
        if isinstance(entries, str | Mapping):
            entries = [entries]
        if not isinstance(entries, list | tuple) or not entries:
            raise ThresholdError(f"thresholds of {key} must be a non-empty list of expressions", entries)
        metric_type = types.get(key.name)
        own = [_parse_entry(key, entry, metric_type) for entry in entries]
        if metric_type is None:
            possible = {"trend", "rate", "counter"}
            for t in own:
                possible &= _type_for_aggregation(t.aggregation.split("(")[0])
            if not possible:
                raise ThresholdError(
                    f"expressions on {key} mix aggregations of different metric types "
                    f"({', '.join(t.aggregation for t in own)})",
                    list(entries),
                )
        for t in own:
            if (str(t.key), t.expression) in seen:
                raise ThresholdError(f"{t.expression!r} on {t.key} is given twice", raw_key)
            seen.add((str(t.key), t.expression))
        parsed.extend(own)
    return ThresholdSet(tuple(parsed), dict(spec))


# --- evaluation --------------------------------------------------------------------------------------


class MetricSource:
    """What evaluation needs from a PhaseSamples (:mod:`pytest_certload.stats`), in one place.

    ``duration_s`` is the phase's length, used by ``rate`` on counters (count per second); it falls
    back to the result's ``meta["duration_s"]``.
    """

    def __init__(self, result: Any, duration_s: float | None = None) -> None:
        self.samples = result
        self._duration_s = duration_s
        self._types = result.metric_names()

    def metric_type(self, name: str) -> MetricType | None:
        return self._types.get(name) or KNOWN_METRICS.get(name)  # type: ignore[return-value]

    def recorded_tag_keys(self, name: str) -> set[str] | None:
        """Tag keys seen on any series of ``name``; None when the metric has no series at all."""
        keys: set[str] | None = None
        for table in (self.samples.trends, self.samples.rates, self.samples.counters):
            for series_name, tags in table:
                if series_name == name:
                    keys = (keys or set()) | {k for k, _ in tags}
        return keys

    def trend(self, key: MetricKey, aggregation: str, percentile: float | None) -> tuple[float | None, int]:
        """(value in milliseconds, sample count) of one aggregation over the selected samples."""
        values_ns = self.samples.select_trend(key.name, key.filter)
        count = int(values_ns.size)
        if count == 0:
            return None, 0
        return aggregate(values_ns.astype(np.float64) / NS_PER_MS, aggregation, percentile), count

    def rate(self, key: MetricKey) -> tuple[int, int]:
        trues, total = self.samples.select_rate(key.name, key.filter)
        return int(trues), int(total)

    def counter(self, key: MetricKey) -> int:
        return int(self.samples.select_counter(key.name, key.filter))

    def duration_s(self) -> float:
        if self._duration_s is not None:
            return float(self._duration_s)
        meta = self.samples.meta
        return float(meta.get("duration_s") or meta.get("wall_seconds") or 0.0)


def evaluate(
    thresholds: ThresholdSet | Iterable[Threshold], result: Any, duration_s: float | None = None
) -> list[Verdict]:
    """Evaluate every threshold on ``result`` (a PhaseSamples); one verdict each, in order."""
    source = result if isinstance(result, MetricSource) else MetricSource(result, duration_s)
    return [evaluate_one(t, source) for t in thresholds]


def evaluate_one(t: Threshold, source: MetricSource) -> Verdict:
    key = str(t.key)
    actual_type = source.metric_type(t.key.name) or t.metric_type
    is_trend_agg = t.aggregation not in ("rate", "count")
    unit = "ms" if is_trend_agg else ""

    def fail(reason: str, count: int = 0, observed: float | None = None) -> Verdict:
        return Verdict(key, t.expression, False, observed, t.limit, count, reason, unit)

    if t.key.name in SERVER_METRICS:
        return _evaluate_server(t, source)
    if actual_type is None:
        return fail(f"no samples: metric {t.key.name} was never recorded")
    allowed = _type_for_aggregation(t.aggregation.split("(")[0])
    if actual_type not in allowed:
        return fail(f"{t.aggregation} does not apply to {t.key.name}, a {actual_type} metric")
    recorded = source.recorded_tag_keys(t.key.name)
    missing = [k for k, _ in t.key.tags if recorded is not None and k not in recorded]
    if missing:
        known = ", ".join(sorted(recorded or ())) or "none"
        return fail(
            f"no samples: tag {', '.join(missing)} is never recorded on {t.key.name} "
            f"(recorded tags: {known}), so this filter can never match"
        )
    if actual_type == "trend":
        observed, count = source.trend(t.key, t.aggregation, t.percentile)
        if count == 0 or observed is None:
            return fail("no samples")
    elif actual_type == "rate":
        trues, count = source.rate(t.key)
        if count == 0:
            # 0.0 only when requests happened and the extra tags simply matched none of them
            scope = MetricKey(t.key.name, tuple((k, v) for k, v in t.key.tags if k == "scenario"))
            if scope == t.key or source.rate(scope)[1] == 0:
                return fail("no samples")
        observed = trues / count if count else 0.0
    else:
        count = source.counter(t.key)
        if t.aggregation == "count":
            observed = float(count)
        else:
            duration = source.duration_s()
            if duration <= 0:
                return fail("no samples: the phase has no duration to compute a per-second rate", count)
            observed = count / duration
            unit = "/s"
    return Verdict(key, t.expression, t.compare(observed), observed, t.limit, count, "", unit)


def aggregate(values: np.ndarray, aggregation: str, percentile: float | None) -> float:
    """One trend aggregation (``p(N)``, ``med``, ``avg``, ``min``, ``max``) of non-empty ``values``."""
    if percentile is not None:
        return float(np.percentile(values, percentile))
    if aggregation == "med":
        return float(np.percentile(values, 50.0))
    return float({"avg": values.mean, "min": values.min, "max": values.max}[aggregation]())


def _evaluate_server(t: Threshold, source: MetricSource) -> Verdict:
    """A server-side metric: derived from the phase's server block when judged (serverside/derived.py)."""
    found, requests, note = server_metric(t.key.name, source.samples, t.key.filter)
    unit = SERVER_METRICS[t.key.name][0]
    if not found:
        return Verdict(str(t.key), t.expression, False, None, t.limit, requests, note, unit)
    observed = aggregate(np.asarray(found, dtype=np.float64), t.aggregation, t.percentile)
    return Verdict(str(t.key), t.expression, t.compare(observed), observed, t.limit, requests, note, unit)


def abort_check(thresholds: ThresholdSet | Iterable[Threshold]) -> Callable[[Any, float], str | None] | None:
    """A callback for the engine: ``check(partial_result, elapsed_s)`` -> reason to stop, or None.

    Only ``abortOnFail`` thresholds whose ``delayAbortEval`` has passed are evaluated; "no samples"
    never aborts (early in a phase a sub-metric may simply not have been hit yet). None when no
    threshold asks for abort, so the engine can skip the periodic evaluation entirely.
    """
    watched = [t for t in thresholds if t.abort_on_fail]
    if not watched:
        return None

    def check(partial: Any, elapsed_s: float) -> str | None:
        source = MetricSource(partial, elapsed_s)
        breaches = []
        for t in watched:
            if elapsed_s < t.delay_abort_eval_s:
                continue
            verdict = evaluate_one(t, source)
            if not verdict.ok and verdict.observed is not None and verdict.count > 0:
                breaches.append(verdict.describe())
        if breaches:
            return f"abortOnFail threshold crossed after {elapsed_s:.1f}s: " + "; ".join(breaches)
        return None

    return check


def breach_message(verdicts: Iterable[Verdict], title: str = "thresholds breached") -> str:
    """Every failed verdict on its own line, with observed value, limit and sample count."""
    failed = [v for v in verdicts if not v.ok]
    if not failed:
        return ""
    lines = [f"{len(failed)} {title}:"] + [f"  {v.describe()}" for v in failed]
    return "\n".join(lines)
