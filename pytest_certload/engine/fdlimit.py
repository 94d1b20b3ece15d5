"""File descriptors for a phase: an agent fleet holds one socket per agent, and they must all fit.

Linux's default soft limit on open files is often 1,024 while the hard limit is far higher, so a
fleet of 1,000 agents would fail its last connections with EMFILE -- connection errors measured as
if certctl had refused them. Like Locust, the engine raises the soft limit towards the hard limit
when a phase needs more (an unprivileged process may), and a phase that cannot fit is refused
before it starts, with the numbers and the fix, instead of being measured.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass

#: beyond the agents' sockets: stdio, logs, PostgreSQL and sampler connections, pytest's own files,
#: the TLS offload threads' pipes, sidecar probes
RESERVE = 128


@dataclass(frozen=True)
class FdHeadroom:
    """What a phase needs and what the process has after raising its soft limit."""

    needed: int  # sockets the phase will hold at once
    open_now: int
    soft: int
    hard: int  # resource.RLIM_INFINITY (-1) when unlimited

    @property
    def fits(self) -> bool:
        return self.soft == resource.RLIM_INFINITY or self.open_now + self.needed + RESERVE <= self.soft

    def problem(self) -> str | None:
        """None when the phase fits, else what is wrong and how to fix it."""
        if self.fits:
            return None
        want = self.open_now + self.needed + RESERVE
        hard = "unlimited" if self.hard == resource.RLIM_INFINITY else f"{self.hard:,}"
        return (
            f"this phase holds {self.needed:,} connections at once (one per simulated agent) and needs about "
            f"{want:,} open files in this process ({self.open_now:,} open now + {RESERVE} spare), but the "
            f"limit is {self.soft:,} (hard limit {hard}, which only a privileged process can raise). Raise "
            f"it before pytest starts (`ulimit -n {want}` in a shell allowed to; systemd: LimitNOFILE=; "
            f"docker: --ulimit nofile={want}:{want}) or run a smaller fleet"
        )


def phase_connections(runs: Sequence[object]) -> int:
    """Sockets an agent fleet holds at once: one per agent (other executors share pooled connections)."""
    return sum(run.spec.vus for run in runs if run.spec.executor == "agent-fleet")  # type: ignore[attr-defined]


def ensure_headroom(needed: int) -> FdHeadroom:
    """Raise the soft limit as far as ``needed`` asks and the hard limit allows; report the result."""
    open_now = _open_fds()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = open_now + needed + RESERVE
    if needed > 0 and soft != resource.RLIM_INFINITY and want > soft:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):  # left as it was: problem() says so
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FdHeadroom(needed, open_now, soft, hard)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: no cheap count; assume a pytest process's usual few dozen
        return 64
