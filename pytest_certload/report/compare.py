"""This run against a saved one: per scenario and metric, baseline vs now, the change and its interval.

A regression gate (``--certload-compare-fail=EXPR``) fails a test when one of its scenarios changed
for the worse by more than a rule allows *and* the change is significant (its 95 % interval excludes
zero on the bad side, :mod:`.significance`): noise on a short run does not fail a build, a real
slowdown does, and the message shows the numbers and the interval.

Scenarios are matched by test node id, the phase's order within the test, and scenario name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_certload.report.significance import Interval, percentile_changes, proportion_change, rate_change
from pytest_certload.report.summary import scenario_seconds
from pytest_certload.stats.timeline import Timeline
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict

GRAMMAR = """\
--certload-compare-fail=RULE[,RULE...]   (the option may be given more than once)
  RULE   = [TREND.]STAT:CHANGE | error_rate:CHANGE | rate:CHANGE
  STAT   = p50 | p90 | p95 | p99 | p99.9 | pN | p(N) | med     (of TREND, default http_req_duration)
  CHANGE = [+]N% | [+]N(us|ms|s)     for STAT: slower by more than N % / by more than a duration
         | [+]Npp | [+]N%            for error_rate: up by N percentage points / by N % of the baseline
         | [-]N% | [-]N/s            for rate (iterations/s achieved): down by N % / by N per second
  e.g. p95:10%  p99:+50ms  error_rate:+0.5pp  rate:-5%  http_req_service_time.p99:20%"""

DEFAULT_QS = (50.0, 95.0, 99.0)
_RULE = re.compile(
    r"^(?:(?P<trend>[A-Za-z_][A-Za-z0-9_]*)\.)?(?P<stat>p\(?\d+(?:\.\d+)?\)?|med|error_rate|rate)"
    r":(?P<sign>[+-])?(?P<num>\d+(?:\.\d+)?)(?P<unit>%|pp|ms|us|µs|s|/s)$"
)
_DURATION_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}


class CompareRuleError(ValueError):
    """A --certload-compare-fail rule that does not parse (the message quotes it and the grammar)."""


@dataclass(frozen=True)
class Rule:
    """How much worse one metric may get: ``limit`` in ``unit`` (%, pp, ms, /s)."""

    text: str
    metric: str  # "p95" (with trend), "error_rate", "rate"
    trend: str
    q: float | None
    limit: float
    relative: bool

    def exceeded(self, change_abs: float | None, change_rel: float | None, worse_sign: int) -> bool:
        change = change_rel * 100 if self.relative else change_abs
        return change is not None and math.isfinite(change) and change * worse_sign > self.limit


def parse_rules(texts: Iterable[str]) -> list[Rule]:
    """Parse every rule of every ``--certload-compare-fail`` value; raise CompareRuleError."""
    rules = []
    for text in texts:
        for raw in (p.strip() for p in str(text).split(",")):
            if raw:
                rules.append(_parse_rule(raw))
    return rules


def _parse_rule(raw: str) -> Rule:
    m = _RULE.match(raw.replace(" ", ""))
    if not m:
        raise CompareRuleError(f"--certload-compare-fail: cannot read {raw!r}\n{GRAMMAR}")
    stat, sign, unit, trend = m["stat"], m["sign"], m["unit"], m["trend"]
    number = float(m["num"])
    if stat in ("error_rate", "rate") and trend:
        raise CompareRuleError(f"--certload-compare-fail: {raw!r}: {stat} takes no trend name\n{GRAMMAR}")
    if stat == "rate":
        if sign == "+" or unit not in ("%", "/s"):
            raise CompareRuleError(
                f"--certload-compare-fail: {raw!r}: rate regresses downwards, give -N% or -N/s\n{GRAMMAR}"
            )
        return Rule(raw, "rate", "iterations", None, number, unit == "%")
    if sign == "-":
        raise CompareRuleError(
            f"--certload-compare-fail: {raw!r}: {stat} regresses upwards, give +N\n{GRAMMAR}"
        )
    if stat == "error_rate":
        if unit not in ("pp", "%"):
            raise CompareRuleError(f"--certload-compare-fail: {raw!r}: error_rate takes pp or %\n{GRAMMAR}")
        return Rule(
            raw, "error_rate", "http_req_failed", None, number / 100 if unit == "pp" else number, unit == "%"
        )
    q = 50.0 if stat == "med" else float(stat.strip("p()"))
    if not 0 < q < 100:
        raise CompareRuleError(f"--certload-compare-fail: {raw!r}: a percentile between 0 and 100\n{GRAMMAR}")
    if unit not in ("%", *_DURATION_MS):
        raise CompareRuleError(f"--certload-compare-fail: {raw!r}: {stat} takes % or us/ms/s\n{GRAMMAR}")
    limit = number if unit == "%" else number * _DURATION_MS[unit]
    return Rule(raw, f"p{q:g}", trend or "http_req_duration", q, limit, unit == "%")


@dataclass
class Row:
    """One metric of one scenario, baseline vs now."""

    test: str
    scenario: str
    metric: str  # "p95 http_req_duration", "error_rate", "rate"
    unit: str  # "ms", "", "/s"
    worse_sign: int  # +1: up is worse (latency, errors); -1: down is worse (rate)
    base: float | None
    now: float | None
    counts: tuple[int, int] = (0, 0)
    interval: Interval | None = None  # of now - base
    rel_interval: Interval | None = None  # of (now - base) / base
    rules: list[Rule] = field(default_factory=list)
    exceeded: list[Rule] = field(default_factory=list)
    matched: bool = True  # the scenario is in the baseline (same test, phase order and name)

    @property
    def change(self) -> float | None:
        return None if self.base is None or self.now is None else self.now - self.base

    @property
    def relative(self) -> float | None:
        c = self.change
        return None if c is None or not self.base else c / self.base

    @property
    def significant(self) -> bool:
        return self.interval is not None and self.interval.excludes_zero()

    @property
    def worse(self) -> bool:
        return self.significant and (self.change or 0) * self.worse_sign > 0

    @property
    def regression(self) -> bool:
        return bool(self.exceeded) and self.worse

    @property
    def status(self) -> str:
        if not self.matched:
            return "new (no baseline)"
        if self.base is None or self.now is None:
            return "no data in the baseline" if self.base is None else "no data now"
        if self.regression:
            return "REGRESSION (" + ", ".join(r.text for r in self.exceeded) + ")"
        if self.exceeded:
            return "over the limit, not significant (noise)"
        if self.significant:
            return "worse" if self.worse else "better"
        return "no significant change"

    def describe(self) -> str:
        """``x p95 http_req_duration: 12.10 ms -> 16.02 ms, +3.92 ms (+32.4 %) (95 % CI ..., n 250 vs 9)``"""
        return (
            f"{self.scenario} {self.metric}: {fmt(self.base, self.unit)} -> {fmt(self.now, self.unit)}, "
            f"{self.change_text()} ({self.ci_text()}, n {self.counts[0]} vs {self.counts[1]})"
        )

    def change_text(self) -> str:
        if self.change is None:
            return "-"
        rel = "" if self.relative is None else f" ({self.relative * 100:+.1f} %)"
        if self.unit == "":
            return f"{self.change * 100:+.2f} pp" + rel
        return f"{fmt(self.change, self.unit, signed=True)}{rel}"

    def ci_text(self, prefix: str = "95 % CI ") -> str:
        if self.interval is None:
            return "no interval"
        lo, hi = self.interval.low, self.interval.high
        if self.unit == "":
            return f"{prefix}{lo * 100:+.2f} .. {hi * 100:+.2f} pp"
        text = f"{prefix}{fmt(lo, self.unit, signed=True)} .. {fmt(hi, self.unit, signed=True)}"
        if self.rel_interval is not None and math.isfinite(self.rel_interval.low):
            text += f" = {self.rel_interval.low * 100:+.1f} .. {self.rel_interval.high * 100:+.1f} %"
        return text


def fmt(value: float | None, unit: str, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    sign = "+" if signed else ""
    if unit == "":
        return f"{value * 100:{sign}.2f} %"
    if unit == "ms":
        return f"{value:{sign}.2f} ms" if abs(value) < 1000 else f"{value / 1000:{sign}.3f} s"
    return f"{value:{sign}.2f}{unit}"


# --- the comparison ------------------------------------------------------------------------------


def _per_second(phase: PhaseVerdict, trend: str, wanted: dict[str, str]) -> list[np.ndarray] | None:
    """A trend's values (ms) second by second, for the block bootstrap (None without marks)."""
    timeline = Timeline.of(phase.samples)
    return None if timeline is None else [v / 1e6 for v in timeline.trend(trend, wanted)]


def _per_second_starts(phase: PhaseVerdict, name: str) -> np.ndarray | None:
    timeline = Timeline.of(phase.samples)
    if timeline is None:
        return None
    starts = timeline.counter("started_iterations", {"scenario": name})
    widths = timeline.widths()
    full = widths >= 0.9  # whole seconds only: the first and last are partial
    started = np.nonzero(starts)[0]
    if started.size:
        full[: started[0]] = False
        full[started[-1] :] = False
    return starts[full] / widths[full]


def compare_scenario(
    test: str,
    base: tuple[PhaseVerdict, ScenarioVerdict] | None,
    now: tuple[PhaseVerdict, ScenarioVerdict],
    rules: Sequence[Rule],
) -> list[Row]:
    """Rows for one scenario: the default percentiles, error rate and rate, plus what rules name."""
    phase, info = now
    name = info.name
    wanted = {"scenario": name}
    trends: dict[str, set[float]] = {"http_req_duration": set(DEFAULT_QS)}
    for rule in rules:
        if rule.q is not None:
            trends.setdefault(rule.trend, set()).add(rule.q)
    rows: list[Row] = []
    for trend, qs_set in trends.items():
        qs = sorted(qs_set)
        now_values = phase.samples.select_trend(trend, wanted) / 1e6
        base_values = base[0].samples.select_trend(trend, wanted) / 1e6 if base else np.empty(0)
        intervals = percentile_changes(
            base_values,
            now_values,
            qs,
            base_blocks=_per_second(base[0], trend, wanted) if base else None,
            now_blocks=_per_second(phase, trend, wanted),
        )
        for q in qs:
            row = Row(test, name, f"p{q:g} {trend}", "ms", +1, None, None)
            row.counts = (int(base_values.size), int(now_values.size))
            row.now = float(np.percentile(now_values, q)) if now_values.size else None
            row.base = float(np.percentile(base_values, q)) if base_values.size else None
            if q in intervals:
                row.interval, row.rel_interval = intervals[q]
            row.rules = [r for r in rules if r.q == q and r.trend == trend]
            rows.append(row)
    now_failed = phase.samples.select_rate("http_req_failed", wanted)
    base_failed = base[0].samples.select_rate("http_req_failed", wanted) if base else (0, 0)
    errors = Row(test, name, "error_rate", "", +1, _ratio(base_failed), _ratio(now_failed))
    errors.counts = (base_failed[1], now_failed[1])
    errors.interval = proportion_change(base_failed, now_failed) if base else None
    errors.rules = [r for r in rules if r.metric == "error_rate"]
    rows.append(errors)
    rate = Row(test, name, "rate", "/s", -1, None, None)
    now_count, now_s = _iterations(phase, info)
    rate.now = now_count / now_s if now_s else None
    rate.counts = (0, int(now_count))
    if base:
        base_count, base_s = _iterations(*base)
        rate.base = base_count / base_s if base_s else None
        rate.counts = (int(base_count), int(now_count))
        rate.interval = rate_change(
            _per_second_starts(base[0], name),
            _per_second_starts(phase, name),
            (base_count, base_s),
            (now_count, now_s),
        )
    rate.rules = [r for r in rules if r.metric == "rate"]
    rows.append(rate)
    rows = [
        row for row in rows if row.base is not None or row.now is not None
    ]  # nothing recorded either side
    for row in rows:
        row.matched = base is not None
        if row.base:
            row.rel_interval = row.rel_interval or (
                row.interval.scaled(1 / row.base) if row.interval else None
            )
        row.exceeded = [r for r in row.rules if r.exceeded(row.change, row.relative, row.worse_sign)]
    return rows


def _ratio(pair: tuple[int, int]) -> float | None:
    return pair[0] / pair[1] if pair[1] else None


def _iterations(phase: PhaseVerdict, info: ScenarioVerdict) -> tuple[float, float]:
    seconds = scenario_seconds(
        phase.samples, info.name, info.start_offset_s, phase.duration_s, info.scheduled_s
    )
    return phase.samples.select_counter("iterations", {"scenario": info.name}), seconds


def _by_test(phases: Iterable[PhaseVerdict]) -> dict[str, list[PhaseVerdict]]:
    out: dict[str, list[PhaseVerdict]] = {}
    for phase in phases:
        out.setdefault(phase.nodeid, []).append(phase)
    return out


def compare_phases(
    base: Sequence[PhaseVerdict], now: Sequence[PhaseVerdict], rules: Sequence[Rule] = ()
) -> list[Row]:
    """Every scenario of ``now`` against its namesake in ``base`` (same test, phase order, name)."""
    base_by_test = _by_test(base)
    rows: list[Row] = []
    for test, phases in _by_test(now).items():
        earlier = base_by_test.get(test, [])
        for i, phase in enumerate(phases):
            match = earlier[i] if i < len(earlier) else None
            for info in phase.scenarios:
                other = next((s for s in match.scenarios if s.name == info.name), None) if match else None
                pair = (match, other) if match is not None and other is not None else None
                rows += compare_scenario(test, pair, (phase, info), rules)
    return rows


# --- different setups --------------------------------------------------------------------------------

_STACK_FIELDS = (
    ("target", "target"),
    ("provider", "stack provider"),
    ("postgres_profile", "PostgreSQL profile"),
    ("postgres_data", "PostgreSQL data"),
    ("postgres_version", "PostgreSQL version"),
    ("rate_limit_enabled", "rate limiting"),
)
_MACHINE_FIELDS = (
    ("cpu_model", "CPU"),
    ("cpu_count_usable", "usable CPUs"),
    ("in_container", "in a container"),
    ("python", "Python"),
)


def _shown(value: Any) -> str:
    return "none" if value is None else repr(value)


def setup_differences(base_info: dict[str, Any], now_info: dict[str, Any]) -> list[str]:
    """What differs between the two runs' stacks and machines (each a reason to distrust the numbers)."""
    out = []
    base_stack, now_stack = base_info.get("stack") or {}, now_info.get("stack") or {}
    for key, label in _STACK_FIELDS:
        if base_stack.get(key) != now_stack.get(key):
            out.append(f"{label}: baseline {_shown(base_stack.get(key))}, now {_shown(now_stack.get(key))}")
    base_machine, now_machine = base_info.get("machine") or {}, now_info.get("machine") or {}
    for key, label in _MACHINE_FIELDS:
        if base_machine.get(key) != now_machine.get(key):
            out.append(
                f"{label}: baseline {_shown(base_machine.get(key))}, now {_shown(now_machine.get(key))}"
            )
    b_mem, n_mem = base_machine.get("memory_bytes") or 0, now_machine.get("memory_bytes") or 0
    if b_mem and n_mem and abs(b_mem - n_mem) > 0.1 * max(b_mem, n_mem):
        out.append(f"memory: baseline {b_mem / 2**30:.1f} GiB, now {n_mem / 2**30:.1f} GiB")
    if base_info.get("duration_override_s") != now_info.get("duration_override_s"):
        out.append(
            f"--certload-duration: baseline {_shown(base_info.get('duration_override_s'))}, "
            f"now {_shown(now_info.get('duration_override_s'))}"
        )
    if base_info.get("interrupted"):
        out.append("the baseline run was interrupted: its phases may be partial")
    return out


def option_differences(base: Sequence[PhaseVerdict], now: Sequence[PhaseVerdict]) -> list[str]:
    """Scenarios whose executor options differ between the runs (rate, duration, VUs, ...)."""
    before = {(p.nodeid, s.name): s.options for p in base for s in p.scenarios}
    out = []
    for phase in now:
        for info in phase.scenarios:
            old = before.get((phase.nodeid, info.name))
            if old is not None and _executor_options(old) != _executor_options(info.options):
                was, now_options = _executor_options(old), _executor_options(info.options)
                out.append(f"{info.name}: options differ: baseline {was}, now {now_options}")
    return out


def _executor_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("thresholds", "tags", "fleets")}


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The terminal table: one line per scenario and metric."""
    from pytest_certload.report.table import render_table

    tests_of: dict[str, set[str]] = {}
    for r in rows:
        tests_of.setdefault(r.scenario, set()).add(r.test)
    body = [
        [
            r.scenario if len(tests_of[r.scenario]) == 1 else f"{r.scenario} ({r.test.rsplit('::', 1)[-1]})",
            r.metric,
            fmt(r.base, r.unit),
            fmt(r.now, r.unit),
            r.change_text(),
            r.ci_text(""),
            r.status,
        ]
        for r in rows
    ]
    return render_table(["scenario", "metric", "baseline", "now", "change", "95 % interval", "verdict"], body)
