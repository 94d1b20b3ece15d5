"""When a simulated certctl agent acts: its options, Go's jittered ticker, and the tick an iteration sees.

certctl's agent (cmd/agent/main.go:190-346 at certctl 151107c) creates two jittered tickers at start
(heartbeat 60 s, work poll 30 s; every tick drawn fresh within +-10 %, internal/scheduler/jitter.go),
sleeps uniform [0, 60 s) and heartbeats, sleeps uniform [0, 30 s) and polls, then serves both tickers
from one goroutine. Each ticker's channel buffers one tick and its goroutine blocks while the buffer
is full, starting the next interval only once its tick was taken (jitter.go:71-100). So an agent that
was busy (its start-up sleeps, a slow poll) takes a buffered tick at once when it gets back: a real
fleet after a restart shows short bursts, and :class:`GoTicker` reproduces them.

Every tick has an intended time (when Go's timer fired); the executor (engine/executors/agent_fleet.py)
runs it as an iteration due then (or when the agent's previous tick ended: ``agent_tick_wait``), so
the generator's lateness lands in the first request's ``http_req_duration`` and in
``iteration_start_lag``, as everywhere in the engine.

This module depends on nothing but the duration parser, so ``spec.py`` can call it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

NS = 1_000_000_000
#: the real agent's defaults (cmd/agent/main.go:190-191; scheduler.DefaultSchedulerJitter)
HEARTBEAT_INTERVAL_S = 60.0
POLL_INTERVAL_S = 30.0
JITTER = 0.10
#: the real agent caps its poll backoff at 5 minutes = 10 poll intervals (main.go:321-339)
BACKOFF_CAP_POLLS = 10
#: marker options of executor="agent-fleet" (besides duration, graceful_stop, start_time)
OPTIONS = (
    "agents",
    "heartbeat_interval",
    "poll_interval",
    "jitter",
    "first_heartbeat_within",
    "first_poll_within",
    "http_version",
    "seed",
)
MAX_AGENTS = 100_000


@dataclass(frozen=True)
class AgentTiming:
    """The fleet's size and cadence; every interval in seconds."""

    agents: int
    heartbeat_interval: float = HEARTBEAT_INTERVAL_S
    poll_interval: float = POLL_INTERVAL_S
    jitter: float = JITTER
    first_heartbeat_within: float = HEARTBEAT_INTERVAL_S
    first_poll_within: float = POLL_INTERVAL_S
    #: "auto": h2 and http/1.1 offered by ALPN, as Go's ForceAttemptHTTP2 (the real agent);
    #: "2": h2 only (a server without h2 fails the connection); "1.1": HTTP/1.1 only
    http_version: str = "auto"
    seed: int | None = None

    @property
    def backoff_cap(self) -> float:
        return BACKOFF_CAP_POLLS * self.poll_interval

    def to_meta(self) -> dict:
        return {k: getattr(self, k) for k in OPTIONS}


def parse_agent_timing(opts: Mapping[str, object]) -> AgentTiming:
    """The agent-fleet options of a marker; raises ExecutorOptionError naming the option and the fix."""
    agents = opts.get("agents")
    if isinstance(agents, bool) or not isinstance(agents, int) or not 1 <= agents <= MAX_AGENTS:
        raise ExecutorOptionError(
            f"agent-fleet: agents={agents!r} must be a whole number of simulated agents, 1 .. {MAX_AGENTS:_}"
        )
    heartbeat = parse_duration(opts.get("heartbeat_interval", HEARTBEAT_INTERVAL_S), "heartbeat_interval")
    poll = parse_duration(opts.get("poll_interval", POLL_INTERVAL_S), "poll_interval")
    jitter = opts.get("jitter", JITTER)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
        raise ExecutorOptionError(f"agent-fleet: jitter={jitter!r} must be a fraction in [0, 1), e.g. 0.1")
    first_hb = parse_duration(opts.get("first_heartbeat_within", heartbeat), "first_heartbeat_within", True)
    first_poll = parse_duration(opts.get("first_poll_within", poll), "first_poll_within", True)
    version = str(opts.get("http_version", "auto"))  # checked by spec.py with every executor's
    seed = opts.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ExecutorOptionError(f"agent-fleet: seed={seed!r} must be a whole number or left out")
    return AgentTiming(agents, heartbeat, poll, float(jitter), first_hb, first_poll, version, seed)


class GoTicker:
    """certctl's JitteredTicker on a simulated clock (ns): one buffered tick, a goroutine that blocks.

    ``fire`` times are the instants Go's timer fired: a tick's intended time.
    """

    __slots__ = ("_blocked", "_interval_ns", "_jitter", "_rng", "buffered", "next_fire")

    def __init__(self, interval_s: float, jitter: float, start_ns: int, rng: random.Random) -> None:
        self._interval_ns = interval_s * NS
        self._jitter = jitter
        self._rng = rng
        self.buffered: int | None = None  # fire time of the tick waiting in the channel
        self._blocked: int | None = None  # fire time of a tick the goroutine is blocked sending
        self.next_fire: int | None = start_ns + self._draw()

    def _draw(self) -> int:
        delta = (self._rng.random() * 2 - 1) * self._jitter
        return max(1, round(self._interval_ns * (1 + delta)))

    def advance(self, now_ns: int) -> None:
        """Let every timer that fired by ``now_ns`` try to put its tick into the channel."""
        while self.next_fire is not None and self.next_fire <= now_ns:
            fired = self.next_fire
            if self.buffered is None:
                self.buffered = fired
                self.next_fire = fired + self._draw()
            else:
                self._blocked = fired
                self.next_fire = None  # the goroutine waits in `jt.C <- t` until the buffer frees

    def take(self, now_ns: int) -> int:
        """Receive the buffered tick (its fire time); a blocked send then fills the buffer."""
        tick = self.buffered
        assert tick is not None, "take() without a buffered tick"
        self.buffered = None
        if self._blocked is not None:
            self.buffered, self._blocked = self._blocked, None
            self.next_fire = now_ns + self._draw()  # the goroutine's next timer starts now
        return tick


@dataclass
class Tick:
    """What the executor tells one tick's iteration, and what the iteration tells it back."""

    agent: int  # 0-based index of the agent in the whole fleet (global across xdist shares)
    kind: str  # "heartbeat" or "poll"
    intended_ns: int
    failed: bool = False  # set by the iteration: the real agent counts a failure (backoff follows)


#: the tick the running iteration serves (each agent runs in its own task, so each sees its own)
CURRENT_TICK: ContextVar[Tick] = ContextVar("certload_agent_tick")


def current_tick() -> Tick:
    """The tick being served; raises LookupError outside an agent-fleet iteration."""
    return CURRENT_TICK.get()
