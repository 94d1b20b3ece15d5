"""The shape of a catalogue of certctl's known defects, shared by the ACME and agent catalogues.

Each catalogue (:mod:`~pytest_certload.scenarios.acme_defects`,
:mod:`~pytest_certload.scenarios.agent_defects`) cites every defect once, by certctl file:line, so
that a scenario's failure message and the contract test pinning it name the same thing in the same
words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defect:
    """One known defect: a stable key, what is wrong, where (certctl file:line), what a client sees."""

    key: str
    title: str
    where: str  # certctl file:line
    effect: str  # what a client (an ACME client, an agent fleet, a drain) sees

    def line(self) -> str:
        return f"certctl defect [{self.key}] {self.title} ({self.where}): {self.effect}"


def catalogue(*defects: Defect) -> dict[str, Defect]:
    """The defects by key; a key given twice is a mistake in the catalogue, not a later override."""
    by_key: dict[str, Defect] = {}
    for d in defects:
        if d.key in by_key:
            raise ValueError(f"defect key {d.key!r} is catalogued twice")
        by_key[d.key] = d
    return by_key
