"""Executor options, named and defaulted as k6's, validated once (the glue calls this at collection)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_certload.engine import agent_timing
from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

EXECUTORS = ("constant-arrival-rate", "ramping-arrival-rate", "constant-vus", "agent-fleet")
ARRIVAL_EXECUTORS = ("constant-arrival-rate", "ramping-arrival-rate")
DEFAULT_GRACEFUL_STOP = 30.0  # k6's gracefulStop default
# A hard ceiling on iterations per scenario, so a loop stays bounded in count whatever the options say.
MAX_ITERATIONS = 50_000_000
# A ceiling on VUs (each is a task or a slot held for the whole phase): a typo like 10**9 is an error.
MAX_VUS = 100_000
# One arrival per nanosecond, the schedule's clock: above it the schedule's arithmetic overflows.
MAX_RATE_PER_S = 1e9

_KNOWN = {
    "constant-arrival-rate": {"rate", "time_unit", "duration", "pre_allocated_vus", "max_vus"},
    "ramping-arrival-rate": {"start_rate", "stages", "time_unit", "pre_allocated_vus", "max_vus"},
    "constant-vus": {"vus", "duration"},
    "agent-fleet": {"duration", *agent_timing.OPTIONS},  # simulated certctl agents (engine/agent_timing.py)
}
_COMMON = {"executor", "graceful_stop", "start_offset", "share_index", "share_count", "max_iterations"}
# per-scenario HTTP options (engine/http2.py): the protocol, and the per-request timeout
_COMMON |= {"http_version", "timeout"}
HTTP_VERSIONS = ("1.1", "2", "auto")  # "auto": offer h2 and http/1.1 by ALPN, use what the server picks
# k6 spells options in camelCase; accept both so a k6 script's options can be pasted.
_CAMEL = {
    "timeUnit": "time_unit",
    "preAllocatedVUs": "pre_allocated_vus",
    "maxVUs": "max_vus",
    "startRate": "start_rate",
    "gracefulStop": "graceful_stop",
    "startTime": "start_offset",
}


@dataclass(frozen=True)
class Stage:
    target: float  # iterations per time_unit at the end of the stage
    duration: float  # seconds


@dataclass(frozen=True)
class ExecutorSpec:
    """One scenario's executor, every duration in seconds.

    ``share_index``/``share_count`` select an interleaved share of an open-model schedule: worker
    ``i`` of ``n`` runs global arrivals ``i, i+n, i+2n, ...`` at their global times, so ``n``
    pytest-xdist workers together run exactly the single-process schedule. ``start_offset``
    delays the whole schedule (k6's ``startTime``).
    """

    executor: str
    duration: float = 0.0
    rate: float = 0.0
    time_unit: float = 1.0
    start_rate: float = 0.0
    stages: tuple[Stage, ...] = ()
    vus: int = 0
    pre_allocated_vus: int = 0
    max_vus: int = 0
    graceful_stop: float = DEFAULT_GRACEFUL_STOP
    start_offset: float = 0.0
    share_index: int = 0
    share_count: int = 1
    max_iterations: int = MAX_ITERATIONS
    extra: Mapping[str, object] = field(default_factory=dict)
    http_version: str = "1.1"  # "1.1", "2" or "auto" (HTTP_VERSIONS)
    timeout: float | None = None  # per request, seconds (None: the engine's, http.DEFAULT_TIMEOUT)

    @property
    def open_model(self) -> bool:
        return self.executor in ARRIVAL_EXECUTORS

    @property
    def rate_share(self) -> float:
        """The fraction of the schedule this process runs."""
        return 1.0 / self.share_count

    @property
    def total_duration(self) -> float:
        """Seconds of the schedule (graceful stop and start offset not included)."""
        if self.executor == "ramping-arrival-rate":
            return sum(s.duration for s in self.stages)
        return self.duration

    def with_share(self, index: int, count: int) -> ExecutorSpec:
        """The same spec restricted to worker ``index`` of ``count``.

        An arrival-rate share also gets its part of ``pre_allocated_vus`` and ``max_vus`` (split as
        evenly as possible, at least one VU each), so the shares together hold what one process
        would; constant-vus splits ``vus`` in its executor.
        """
        _check_share(index, count)
        from dataclasses import replace

        if not self.open_model or count == self.share_count:
            return replace(self, share_index=index, share_count=count)
        pre = max(1, split_evenly(self.pre_allocated_vus, index, count))
        most = max(pre, split_evenly(self.max_vus, index, count))
        return replace(self, share_index=index, share_count=count, pre_allocated_vus=pre, max_vus=most)

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> ExecutorSpec:
        """Parse k6-style options (snake_case or k6's camelCase); raise ExecutorOptionError."""
        if not isinstance(options, Mapping):
            raise ExecutorOptionError(f"executor options must be a mapping, got {type(options).__name__}")
        twice = [k for k in _CAMEL if k in options and _CAMEL[k] in options]
        if twice:
            camel, snake = twice[0], _CAMEL[twice[0]]
            raise ExecutorOptionError(
                f"{camel}={options[camel]!r} and {snake}={options[snake]!r} are one option: give it once"
            )
        opts = {_CAMEL.get(k, k): v for k, v in options.items()}
        executor = opts.get("executor")
        if executor not in EXECUTORS:
            raise ExecutorOptionError(
                f"executor: {executor!r} is not supported; use one of {', '.join(EXECUTORS)}"
            )
        unknown = set(opts) - _KNOWN[executor] - _COMMON
        if unknown:
            raise ExecutorOptionError(
                f"{executor}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(_KNOWN[executor] | _COMMON - {'executor'}))}"
            )
        common = {
            "graceful_stop": parse_duration(
                opts.get("graceful_stop", DEFAULT_GRACEFUL_STOP), "graceful_stop", True
            ),
            "start_offset": parse_duration(opts.get("start_offset", 0), "start_offset", True),
            "share_index": _int(opts, "share_index", 0, minimum=0),
            "share_count": _int(opts, "share_count", 1, minimum=1),
            "max_iterations": _int(opts, "max_iterations", MAX_ITERATIONS, 1, MAX_ITERATIONS),
            "http_version": _http_version(opts.get("http_version", _default_http_version(executor))),
            "timeout": parse_duration(opts["timeout"], "timeout") if "timeout" in opts else None,
        }
        _check_share(common["share_index"], common["share_count"])
        if executor == "agent-fleet":  # each agent a VU with its own connection and Go's tickers
            _require(opts, executor, "agents", "duration")
            timing = agent_timing.parse_agent_timing({**opts, "http_version": common["http_version"]})
            duration = parse_duration(opts["duration"])
            extra = {"agent_timing": timing}
            return cls(executor, duration=duration, vus=timing.agents, extra=extra, **common)
        if executor == "constant-vus":
            _require(opts, executor, "vus", "duration")
            return cls(
                executor,
                duration=parse_duration(opts["duration"]),
                vus=_int(opts, "vus", 0, 1, MAX_VUS),
                **common,
            )
        time_unit = parse_duration(opts.get("time_unit", 1.0), "time_unit")
        if executor == "constant-arrival-rate":
            _require(opts, executor, "rate", "duration", "pre_allocated_vus")
            rate = _number(opts, "rate", minimum_exclusive=0.0)
            pre, max_vus = _vus(opts)
            spec = cls(
                executor,
                duration=parse_duration(opts["duration"]),
                rate=rate,
                time_unit=time_unit,
                pre_allocated_vus=pre,
                max_vus=max_vus,
                **common,
            )
            return _schedule_checked(spec, capped="max_iterations" in opts)
        _require(opts, executor, "stages", "pre_allocated_vus")
        stages = _stages(opts["stages"])
        pre, max_vus = _vus(opts)
        spec = cls(
            executor,
            start_rate=_number(opts, "start_rate", minimum=0.0) if "start_rate" in opts else 0.0,
            stages=stages,
            time_unit=time_unit,
            pre_allocated_vus=pre,
            max_vus=max_vus,
            **common,
        )
        return _schedule_checked(spec, capped="max_iterations" in opts)


def _schedule_checked(spec: ExecutorSpec, capped: bool) -> ExecutorSpec:
    """An open-model schedule that can run: no overflow when the phase starts (rate 2 per 1e-300 s),
    and no silent cut at MAX_ITERATIONS unless max_iterations asks for one."""
    if spec.executor == "constant-arrival-rate":
        peak = spec.rate / spec.time_unit
        arrivals = peak * spec.duration
    else:  # as engine/schedule.py: the rate is linear within each stage
        peak, arrivals, r0 = spec.start_rate / spec.time_unit, 0.0, spec.start_rate / spec.time_unit
        for stage in spec.stages:
            r1 = stage.target / spec.time_unit
            peak, arrivals, r0 = max(peak, r1), arrivals + (r0 + r1) / 2 * stage.duration, r1
    top = max(spec.rate, spec.start_rate, *(s.target for s in spec.stages))
    written = f"a rate of {top:g} per time_unit {spec.time_unit:g}s for {spec.total_duration:g}s"
    if not peak <= MAX_RATE_PER_S or not math.isfinite(arrivals):
        raise ExecutorOptionError(
            f"{spec.executor}: {written} is {peak:.4g} iterations per second, above one per nanosecond "
            "(the schedule's clock); check rate and time_unit"
        )
    if arrivals >= MAX_ITERATIONS + 1 and not capped:
        raise ExecutorOptionError(
            f"{spec.executor}: {written} is {arrivals:.4g} iterations, above the engine's ceiling of "
            f"{MAX_ITERATIONS:_} per scenario; lower the rate or the duration (or set max_iterations "
            "to cut the schedule on purpose)"
        )
    return spec


def split_evenly(total: int, index: int, count: int) -> int:
    """Share ``index`` of ``total`` split into ``count`` parts that differ by at most one."""
    return total // count + (1 if index < total % count else 0)


def _require(opts: Mapping[str, object], executor: str, *names: str) -> None:
    missing = [n for n in names if n not in opts]
    if missing:
        raise ExecutorOptionError(f"{executor}: missing required option(s) {', '.join(missing)}")


def _number(
    opts: Mapping[str, object],
    name: str,
    minimum: float | None = None,
    minimum_exclusive: float | None = None,
) -> float:
    written = opts[name]
    value = _finite(written, name)
    if minimum is not None and value < minimum:
        raise ExecutorOptionError(f"{name}: {written!r} must be >= {minimum:g}")
    if minimum_exclusive is not None and value <= minimum_exclusive:
        raise ExecutorOptionError(f"{name}: {written!r} must be > {minimum_exclusive:g}")
    return value


def _finite(value: object, name: str) -> float:
    """``value`` as a finite float; an error naming the option for a bool, a string, NaN, inf or 10**400."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExecutorOptionError(f"{name}: {value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ExecutorOptionError(f"{name}: {value!r} is not a finite number")
    return number


def _int(
    opts: Mapping[str, object], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExecutorOptionError(f"{name}: {value!r} is not a whole number")
    if value < minimum:
        raise ExecutorOptionError(f"{name}: {value!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ExecutorOptionError(f"{name}: {value!r} must be <= {maximum:_}")
    return value


def _vus(opts: Mapping[str, object]) -> tuple[int, int]:
    pre = _int(opts, "pre_allocated_vus", 0, 1, MAX_VUS)
    max_vus = _int(opts, "max_vus", pre, 1, MAX_VUS)
    if max_vus < pre:
        raise ExecutorOptionError(
            f"max_vus ({max_vus}) is below pre_allocated_vus ({pre}); raise max_vus or omit it"
        )
    return pre, max_vus


def _stages(raw: object) -> tuple[Stage, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ExecutorOptionError("stages: must be a non-empty list of {target, duration}")
    stages = []
    for i, stage in enumerate(raw):
        if not isinstance(stage, Mapping) or set(stage) != {"target", "duration"}:
            raise ExecutorOptionError(
                f"stages[{i}]: {stage!r} must be a mapping with exactly target and duration"
            )
        target = _finite(stage["target"], f"stages[{i}].target")
        if target < 0:
            raise ExecutorOptionError(f"stages[{i}].target: {stage['target']!r} must be a number >= 0")
        stages.append(Stage(target, parse_duration(stage["duration"], f"stages[{i}].duration")))
    return tuple(stages)


def _default_http_version(executor: object) -> str:
    # certctl's agent: Go's ForceAttemptHTTP2 offers h2 and http/1.1 by ALPN ("auto")
    return "auto" if executor == "agent-fleet" else "1.1"


def _http_version(value: object) -> str:
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if text == "2.0":
        text = "2"
    if text not in HTTP_VERSIONS:
        raise ExecutorOptionError(
            f"http_version: {value!r} is not supported; use '1.1', '2' (HTTP/2 over TLS, ALPN h2) or "
            "'auto' (offer both by ALPN and use what the server picks, as Go's client does)"
        )
    return text  # type: ignore[return-value]


def _check_share(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise ExecutorOptionError(
            f"share_index {index} of share_count {count}: need 0 <= share_index < share_count"
        )
