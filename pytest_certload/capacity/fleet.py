"""A rate in fleet terms: agents at certctl's agent intervals, certificates at a lifetime and window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AGENT_HEARTBEAT_S = 60.0  # certctl's agent: heartbeat every 60 s, work poll every 30 s (+-10 % jitter)
AGENT_POLL_S = 30.0
DAY_S = 86_400.0


@dataclass(frozen=True)
class Fleet:
    """What a rate means as a fleet: each member causes ``per_member_per_s`` iterations a second."""

    members: str  # "agents", "certificates"
    per_member_per_s: float
    basis: str  # how a member makes the rate, and what the translation leaves out
    per_day: str | None = None  # e.g. "certificates/day": also state the rate per day

    def size(self, rate: float) -> float:
        return rate / self.per_member_per_s

    def to_dict(self, holds: float | None, fails: float | None) -> dict[str, Any]:
        """The interval in fleet terms: ``holds 20,400 agents, fails at 21,600 agents``."""
        sizes = [None if r is None else self.size(r) for r in (holds, fails)]
        if sizes[0] is None:
            text = f"fewer than {count_text(sizes[1])} {self.members}" if sizes[1] else "no fleet size"
        elif sizes[1] is None:
            text = f"at least {count_text(sizes[0])} {self.members}"
        else:
            text = f"holds {count_text(sizes[0])} {self.members}, fails at {count_text(sizes[1])}"
        if self.per_day and holds is not None:
            text = f"{count_text(holds * DAY_S)} {self.per_day}; {text}"
        return {
            "members": self.members,
            "per_member_per_s": self.per_member_per_s,
            "basis": self.basis,
            "holds": sizes[0],
            "fails": sizes[1],
            "per_day": holds * DAY_S if self.per_day and holds is not None else None,
            "text": f"{text} ({self.basis})",
        }


def count_text(value: float | None) -> str:
    """Three significant digits, in words past a million: 20,400 / 1.73 million / 4.7 billion."""
    if value is None:
        return "-"
    for size, word in ((1e9, "billion"), (1e6, "million")):
        if value >= size:
            return f"{value / size:.3g} {word}"
    return f"{float(f'{value:.3g}'):,.0f}"


def agent_heartbeats(interval_s: float = AGENT_HEARTBEAT_S) -> Fleet:
    return Fleet(
        "agents",
        1.0 / interval_s,
        f"one heartbeat every {interval_s:g} s per agent; a real agent also "
        f"polls for work every {AGENT_POLL_S:g} s, which this rate does not include",
    )


def agent_polls(interval_s: float = AGENT_POLL_S) -> Fleet:
    return Fleet(
        "agents",
        1.0 / interval_s,
        f"one work poll every {interval_s:g} s per agent; heartbeats "
        f"(every {AGENT_HEARTBEAT_S:g} s) not included",
    )


def agent_traffic(heartbeat_s: float = AGENT_HEARTBEAT_S, poll_s: float = AGENT_POLL_S) -> Fleet:
    """A scenario that mixes both as an agent does: N agents = N/60 heartbeats/s + N/30 polls/s."""
    return Fleet(
        "agents",
        1.0 / heartbeat_s + 1.0 / poll_s,
        f"N agents = N/{heartbeat_s:g} heartbeats/s + N/{poll_s:g} polls/s",
    )


def certificate_renewals(
    lifetime_days: float = 47.0, renewal_window_days: float = 30.0, what: str = "issuance"
) -> Fleet:
    """Each certificate is issued again every lifetime - window days: fleet = rate x that many seconds."""
    if not 0 <= renewal_window_days < lifetime_days:
        raise ValueError(
            f"renewal window {renewal_window_days:g} d must be shorter than the lifetime {lifetime_days:g} d"
        )
    every = lifetime_days - renewal_window_days
    return Fleet(
        "certificates",
        1.0 / (every * DAY_S),
        f"{lifetime_days:g}-day certificates renewed {renewal_window_days:g} days before expiry, i.e. one "
        f"{what} per certificate every {every:g} days, at a flat rate around the clock",
        "certificates/day",
    )
