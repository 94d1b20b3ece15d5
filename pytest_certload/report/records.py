"""What one load phase leaves behind: plain data that serialises (for xdist) and that reports read.

A *phase* is one ``run_phase`` call: one scenario (``certload.run``) or several run concurrently
(``certload.run_many``). Its :class:`PhaseRecord` holds the phase's PhaseResult, per-scenario
options and verdicts, phase-wide verdicts, generator health and the stack description.
:class:`ScenarioResult` is what a test gets back: a view of one scenario of a record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_certload.thresholds import Verdict, breach_message


@dataclass
class ScenarioInfo:
    """One scenario of a phase: how it was configured and how its thresholds came out."""

    name: str
    options: dict[str, Any]  # JSON-safe k6-style options as run (after --certload-duration)
    executor: str
    target_rate_per_s: float | None  # iterations/s the executor aimed at (arrival-rate executors)
    target_vus: int | None  # VUs for constant-vus
    verdicts: list[Verdict] = field(default_factory=list)
    start_offset_s: float = 0.0  # k6's startTime: the scenario waited this long before its first iteration
    scheduled_s: float = 0.0  # the executor's schedule length (duration or the sum of stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "options": self.options,
            "executor": self.executor,
            "target_rate_per_s": self.target_rate_per_s,
            "target_vus": self.target_vus,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "start_offset_s": self.start_offset_s,
            "scheduled_s": self.scheduled_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioInfo:
        return cls(
            name=data["name"],
            options=dict(data["options"]),
            executor=data["executor"],
            target_rate_per_s=data["target_rate_per_s"],
            target_vus=data["target_vus"],
            verdicts=[Verdict.from_dict(v) for v in data["verdicts"]],
            start_offset_s=data.get("start_offset_s", 0.0),
            scheduled_s=data.get("scheduled_s", 0.0),
        )


@dataclass
class PhaseRecord:
    """Everything the session summary needs about one phase."""

    nodeid: str
    result: Any  # pytest_certload.stats.PhaseResult
    duration_s: float
    scenarios: list[ScenarioInfo]
    phase_verdicts: list[Verdict] = field(default_factory=list)  # run_many's phase-wide thresholds
    health: dict[str, Any] = field(default_factory=dict)
    saturated: bool = False
    saturation_reason: str = ""
    aborted: str | None = None  # why an abortOnFail threshold stopped the phase early
    stack: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    inspected: bool = field(default=False, compare=False)  # did the test look at its verdicts? (not sent)

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for s in self.scenarios for v in s.verdicts] + list(self.phase_verdicts)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nodeid": self.nodeid,
            "result": self.result.to_dict(),
            "duration_s": self.duration_s,
            "scenarios": [s.to_dict() for s in self.scenarios],
            "phase_verdicts": [v.to_dict() for v in self.phase_verdicts],
            "health": self.health,
            "saturated": self.saturated,
            "saturation_reason": self.saturation_reason,
            "aborted": self.aborted,
            "stack": self.stack,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseRecord:
        from pytest_certload.stats import PhaseResult

        return cls(
            id=data["id"],
            nodeid=data["nodeid"],
            result=PhaseResult.from_dict(data["result"]),
            duration_s=data["duration_s"],
            scenarios=[ScenarioInfo.from_dict(s) for s in data["scenarios"]],
            phase_verdicts=[Verdict.from_dict(v) for v in data["phase_verdicts"]],
            health=dict(data["health"]),
            saturated=data["saturated"],
            saturation_reason=data["saturation_reason"],
            aborted=data["aborted"],
            stack=data["stack"],
        )


class ScenarioResult:
    """What ``certload.run`` returns: the phase's samples, this scenario's verdicts and health."""

    def __init__(self, record: PhaseRecord, name: str) -> None:
        self.record = record
        self.name = name
        self.info = next(s for s in record.scenarios if s.name == name)

    @property
    def result(self) -> Any:
        """The PhaseResult (for ``run_many`` it holds every scenario; filter by ``scenario``)."""
        return self.record.result

    @property
    def verdicts(self) -> list[Verdict]:
        self.record.inspected = True
        return list(self.info.verdicts)

    @property
    def health(self) -> dict[str, Any]:
        return self.record.health

    @property
    def ok(self) -> bool:
        self.record.inspected = True
        return all(v.ok for v in self.info.verdicts)

    def breach_message(self) -> str:
        self.record.inspected = True
        return breach_message(self.info.verdicts, f"thresholds breached in scenario {self.name}")

    def assert_thresholds(self) -> None:
        """Raise AssertionError listing every breached threshold (observed, limit, count)."""
        if not self.ok:
            raise AssertionError(self.breach_message())

    def __repr__(self) -> str:
        passed = sum(v.ok for v in self.info.verdicts)
        return f"<ScenarioResult {self.name}: {passed}/{len(self.info.verdicts)} thresholds ok>"


class PhaseResults(Mapping[str, ScenarioResult]):
    """What ``certload.run_many`` returns: one ScenarioResult per scenario plus phase-wide verdicts."""

    def __init__(self, record: PhaseRecord) -> None:
        self.record = record
        self._by_name = {s.name: ScenarioResult(record, s.name) for s in record.scenarios}

    def __getitem__(self, name: str) -> ScenarioResult:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def result(self) -> Any:
        return self.record.result

    @property
    def health(self) -> dict[str, Any]:
        return self.record.health

    @property
    def verdicts(self) -> list[Verdict]:
        self.record.inspected = True
        return self.record.verdicts

    @property
    def ok(self) -> bool:
        self.record.inspected = True
        return self.record.ok

    def breach_message(self) -> str:
        self.record.inspected = True
        return breach_message(self.record.verdicts, "thresholds breached in this phase")

    def assert_thresholds(self) -> None:
        if not self.ok:
            raise AssertionError(self.breach_message())
