"""A judged phase: the samples of one load phase and the verdicts of its thresholds on them.

The flow of one phase, and the type each step leaves behind:

- the engine records raw samples (:class:`~pytest_certload.stats.Recorder`) and returns a
  :class:`~pytest_certload.engine.PhaseMeasurement`: the phase's
  :class:`~pytest_certload.stats.PhaseSamples` plus the generator's health;
- the runner judges the thresholds on those samples: a :class:`PhaseVerdict` (this module), with
  one :class:`ScenarioVerdict` per scenario. It is plain data that serialises (xdist sends it to
  the controller, which merges the workers' verdicts and judges again on the pooled samples) and
  that the reports read;
- a test gets a view of it back: :mod:`pytest_certload.results`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_certload.thresholds import Verdict

#: PhaseSamples.meta entry of a phase split across pytest-xdist workers: this worker's share
SPLIT_META_KEY = "certload_split"


@dataclass
class ScenarioVerdict:
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
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioVerdict:
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
class PhaseVerdict:
    """One phase judged: its samples, per-scenario and phase-wide verdicts, generator health, stack."""

    nodeid: str
    samples: Any  # pytest_certload.stats.PhaseSamples: the data the verdicts were judged on
    duration_s: float
    scenarios: list[ScenarioVerdict]
    phase_verdicts: list[Verdict] = field(default_factory=list)  # run_many's phase-wide thresholds
    health: dict[str, Any] = field(default_factory=dict)
    saturated: bool = False
    saturation_reason: str = ""
    aborted: str | None = None  # why an abortOnFail threshold stopped the phase early
    interrupted: str | None = None  # what cut the phase short (Ctrl-C, SIGTERM): its samples are partial
    stack: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    inspected: bool = field(default=False, compare=False)  # did the test look at its verdicts? (not sent)

    @property
    def verdicts(self) -> list[Verdict]:
        return [v for s in self.scenarios for v in s.verdicts] + list(self.phase_verdicts)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def split(self) -> dict[str, Any]:
        """This process's share of a phase split across pytest-xdist workers (empty when not split)."""
        return self.samples.meta.get(SPLIT_META_KEY, {})

    @property
    def merged_note(self) -> str:
        """`` (merged over N workers)`` for a phase pooled from xdist workers' shares, else ''."""
        count = int(self.split.get("count", 1)) if "workers" in self.split else 1
        return f" (merged over {count} workers)" if count > 1 else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nodeid": self.nodeid,
            "samples": self.samples.to_dict(),
            "duration_s": self.duration_s,
            "scenarios": [s.to_dict() for s in self.scenarios],
            "phase_verdicts": [v.to_dict() for v in self.phase_verdicts],
            "health": self.health,
            "saturated": self.saturated,
            "saturation_reason": self.saturation_reason,
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "stack": self.stack,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseVerdict:
        from pytest_certload.stats import PhaseSamples

        return cls(
            id=data["id"],
            nodeid=data["nodeid"],
            samples=PhaseSamples.from_dict(data["samples"]),
            duration_s=data["duration_s"],
            scenarios=[ScenarioVerdict.from_dict(s) for s in data["scenarios"]],
            phase_verdicts=[Verdict.from_dict(v) for v in data["phase_verdicts"]],
            health=dict(data["health"]),
            saturated=data["saturated"],
            saturation_reason=data["saturation_reason"],
            aborted=data["aborted"],
            interrupted=data.get("interrupted"),
            stack=data["stack"],
        )
