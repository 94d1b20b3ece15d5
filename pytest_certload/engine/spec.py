"""Executor options, named and defaulted as k6's, validated once (the glue calls this at collection)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

EXECUTORS = ("constant-arrival-rate", "ramping-arrival-rate", "constant-vus")
ARRIVAL_EXECUTORS = ("constant-arrival-rate", "ramping-arrival-rate")
DEFAULT_GRACEFUL_STOP = 30.0  # k6's gracefulStop default
# A hard ceiling on iterations per scenario, so a loop stays bounded in count whatever the options say.
MAX_ITERATIONS = 50_000_000

_KNOWN = {
    "constant-arrival-rate": {"rate", "time_unit", "duration", "pre_allocated_vus", "max_vus"},
    "ramping-arrival-rate": {"start_rate", "stages", "time_unit", "pre_allocated_vus", "max_vus"},
    "constant-vus": {"vus", "duration"},
}
_COMMON = {"executor", "graceful_stop", "start_offset", "share_index", "share_count", "max_iterations"}
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
            "max_iterations": _int(opts, "max_iterations", MAX_ITERATIONS, minimum=1),
        }
        _check_share(common["share_index"], common["share_count"])
        if executor == "constant-vus":
            _require(opts, executor, "vus", "duration")
            return cls(
                executor,
                duration=parse_duration(opts["duration"]),
                vus=_int(opts, "vus", 0, minimum=1),
                **common,
            )
        time_unit = parse_duration(opts.get("time_unit", 1.0), "time_unit")
        if executor == "constant-arrival-rate":
            _require(opts, executor, "rate", "duration", "pre_allocated_vus")
            rate = _number(opts, "rate", minimum_exclusive=0.0)
            pre, max_vus = _vus(opts)
            return cls(
                executor,
                duration=parse_duration(opts["duration"]),
                rate=rate,
                time_unit=time_unit,
                pre_allocated_vus=pre,
                max_vus=max_vus,
                **common,
            )
        _require(opts, executor, "stages", "pre_allocated_vus")
        stages = _stages(opts["stages"])
        pre, max_vus = _vus(opts)
        return cls(
            executor,
            start_rate=_number(opts, "start_rate", minimum=0.0) if "start_rate" in opts else 0.0,
            stages=stages,
            time_unit=time_unit,
            pre_allocated_vus=pre,
            max_vus=max_vus,
            **common,
        )


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
    value = opts[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExecutorOptionError(f"{name}: {value!r} is not a number")
    if minimum is not None and value < minimum:
        raise ExecutorOptionError(f"{name}: {value!r} must be >= {minimum:g}")
    if minimum_exclusive is not None and value <= minimum_exclusive:
        raise ExecutorOptionError(f"{name}: {value!r} must be > {minimum_exclusive:g}")
    return float(value)


def _int(opts: Mapping[str, object], name: str, default: int, minimum: int) -> int:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExecutorOptionError(f"{name}: {value!r} is not a whole number")
    if value < minimum:
        raise ExecutorOptionError(f"{name}: {value!r} must be >= {minimum}")
    return value


def _vus(opts: Mapping[str, object]) -> tuple[int, int]:
    pre = _int(opts, "pre_allocated_vus", 0, minimum=1)
    max_vus = _int(opts, "max_vus", pre, minimum=1)
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
        target = stage["target"]
        if isinstance(target, bool) or not isinstance(target, int | float) or target < 0:
            raise ExecutorOptionError(f"stages[{i}].target: {target!r} must be a number >= 0")
        stages.append(Stage(float(target), parse_duration(stage["duration"], f"stages[{i}].duration")))
    return tuple(stages)


def _check_share(index: int, count: int) -> None:
    if count < 1 or not 0 <= index < count:
        raise ExecutorOptionError(
            f"share_index {index} of share_count {count}: need 0 <= share_index < share_count"
        )
