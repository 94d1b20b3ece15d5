"""What a test gets back from the ``certload`` fixture: a view of one judged phase.

``certload.run(...)`` returns a :class:`ScenarioResult`, ``certload.run_many({...})`` a
:class:`RunManyResult` (a mapping of ScenarioResult plus the phase-wide verdicts). Both read a
:class:`~pytest_certload.verdict.PhaseVerdict`; they own no data of their own.

Under pytest-xdist a phase split across workers comes back merged (every worker's samples pooled,
thresholds judged again on them), so a test's assertions mean the same with or without ``-n``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pytest_certload.serverside.summary import phase_block
from pytest_certload.thresholds import Verdict, breach_message
from pytest_certload.verdict import PhaseVerdict, ScenarioVerdict


class _PhaseView:
    """The parts both views share: samples, health, and noting that the test looked."""

    def __init__(self, phase: PhaseVerdict) -> None:
        self.phase = phase

    @property
    def samples(self) -> Any:
        """The phase's PhaseSamples (for ``run_many`` every scenario's; filter by ``scenario``)."""
        return self.phase.samples

    @property
    def health(self) -> dict[str, Any]:
        return self.phase.health

    @property
    def server(self) -> dict[str, Any] | None:
        """certctl, PostgreSQL and the machine over the phase (figures per request, CPU shares, the
        bottleneck line, the raw block); None when no stack was sampled (pytest_certload/serverside/)."""
        return phase_block(self.phase)

    def _verdicts(self) -> list[Verdict]:
        raise NotImplementedError

    def _title(self) -> str:
        raise NotImplementedError

    @property
    def verdicts(self) -> list[Verdict]:
        self.phase.inspected = True
        return self._verdicts()

    @property
    def ok(self) -> bool:
        self.phase.inspected = True
        return all(v.ok for v in self._verdicts())

    def breach_message(self) -> str:
        self.phase.inspected = True
        return breach_message(self._verdicts(), self._title())

    def assert_thresholds(self) -> None:
        """Raise AssertionError listing every breached threshold (observed, limit, count)."""
        if not self.ok:
            raise AssertionError(self.breach_message())


class ScenarioResult(_PhaseView):
    """What ``certload.run`` returns: one scenario's verdicts, the phase's samples and health."""

    def __init__(self, phase: PhaseVerdict, name: str) -> None:
        super().__init__(phase)
        self.name = name
        self.scenario: ScenarioVerdict = next(s for s in phase.scenarios if s.name == name)

    def _verdicts(self) -> list[Verdict]:
        return list(self.scenario.verdicts)

    def _title(self) -> str:
        return f"thresholds breached{self.phase.merged_note} in scenario {self.name}"

    def __repr__(self) -> str:
        passed = sum(v.ok for v in self.scenario.verdicts)
        return f"<ScenarioResult {self.name}: {passed}/{len(self.scenario.verdicts)} thresholds ok>"


class RunManyResult(_PhaseView, Mapping[str, ScenarioResult]):
    """What ``certload.run_many`` returns: a ScenarioResult per scenario plus phase-wide verdicts."""

    def __init__(self, phase: PhaseVerdict) -> None:
        super().__init__(phase)
        self._by_name = {s.name: ScenarioResult(phase, s.name) for s in phase.scenarios}

    def __getitem__(self, name: str) -> ScenarioResult:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def _verdicts(self) -> list[Verdict]:
        return self.phase.verdicts

    def _title(self) -> str:
        return f"thresholds breached{self.phase.merged_note} in this phase"
