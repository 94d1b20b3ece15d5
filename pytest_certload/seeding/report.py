"""What one seeding run did, as plain data that serialises into the session summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class SeedReport:
    """Outcome of seeding one fleet.

    ``expected`` rows were asked for, ``inserted`` are new this run (0 when seeding again),
    ``present`` were verified to exist afterwards. ``ids`` are the row ids scenarios use
    (an :class:`~pytest_certload.seeding.fleet.IdRange` for SQL seeding; the server-generated
    ids for agents registered over the API, which ignores client ids).
    """

    fleet: str
    table: str
    method: Literal["copy", "api"]
    expected: int
    inserted: int
    present: int
    seconds: float
    ids: Sequence[str] = field(default_factory=tuple, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.expected / self.seconds if self.seconds > 0 else float("inf")

    @property
    def id_range(self) -> tuple[str, str] | None:
        return (self.ids[0], self.ids[-1]) if len(self.ids) else None

    def to_dict(self) -> dict:
        return {
            "fleet": self.fleet,
            "table": self.table,
            "method": self.method,
            "expected": self.expected,
            "inserted": self.inserted,
            "present": self.present,
            "seconds": round(self.seconds, 4),
            "rows_per_second": round(self.rows_per_second, 1),
            "id_range": list(self.id_range) if self.id_range else None,
            "notes": list(self.notes),
        }


@dataclass
class CleanupReport:
    fleet: str
    table: str
    deleted: int
    seconds: float
