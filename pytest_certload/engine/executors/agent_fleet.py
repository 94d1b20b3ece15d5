"""executor="agent-fleet": N simulated certctl agents, each a VU with its own connection and Go's tickers.

Every agent runs as certctl's agent does (engine/agent_timing.py): first heartbeat at uniform
[0, first_heartbeat_within), first poll uniform [0, first_poll_within) after it, then a heartbeat and
a work-poll ticker with +-jitter, one tick at a time. Each tick is one iteration of the scenario
(``runtime.run_iteration``) due at the instant Go's timer fired -- or, when the agent was still busy
with its previous tick, when that one ended (that wait, the agent's own, is the trend
``agent_tick_wait{agent_step}``); ticks fired during the start-up sleeps or a backoff are due when
the sleep ends, as the agent meant. The generator's lateness against that time is in the first
request's ``http_req_duration`` (coordinated-omission corrected) and ``iteration_start_lag``. The
iteration learns which agent and which tick it serves from :func:`agent_timing.current_tick`.

One connection per agent, as Go's transport keeps one: the executor gives the scenario a client
that routes each request to the serving agent's own client (HTTP/1.1 with one connection per
origin, or HTTP/2 when engine/http2.py is there). Agents connect at their first heartbeat, so a
fleet opens its connections spread over ``first_heartbeat_within``, not all at once. Request
timeouts of all agents' clients are checked by one sweeper (a timer per client would cost more
than the requests).

The real agent backs off before a poll after failures (``failures x poll_interval``, capped at ten
polls: main.go:321-339); the backoff is the agent's choice, so the poll is due when it ends.
An iteration object with a ``finished`` asyncio.Event ends the fleet early when it is set (a
renewal drain that is done).
"""

from __future__ import annotations

import asyncio
import random
from time import monotonic_ns

from pytest_certload.engine.agent_timing import CURRENT_TICK, NS, AgentTiming, GoTicker, Tick
from pytest_certload.engine.executors.base import graceful_stop
from pytest_certload.engine.http import HttpClient, Response
from pytest_certload.engine.http2 import Http2Client
from pytest_certload.engine.scenario import ScenarioRuntime

SWEEP_SECONDS = 0.1


class _Sweeper:
    """One timer for the request timeouts of every agent's HTTP/1.1 client (only those busy)."""

    def __init__(self) -> None:
        self.busy: set[HttpClient] = set()
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is None:
            self._handle = loop.call_later(SWEEP_SECONDS, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = monotonic_ns()
        for client in list(self.busy):
            for conn in list(client._conns):
                if conn.waiter is not None and conn.deadline_ns <= now:
                    conn._on_timeout()
        self._handle = loop.call_later(SWEEP_SECONDS, self._sweep, loop)

    def cancel(self) -> None:  # HttpClient.close() cancels its "sweeper": ours stays for the others
        pass

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class FleetHttp1Client(HttpClient):
    """One agent's HTTP/1.1 client: one connection, timeouts swept by the fleet's sweeper."""

    def __init__(self, sweeper: _Sweeper, ssl_context, timeout: float) -> None:
        super().__init__(ssl_context, timeout=timeout, max_connections_per_origin=1)
        self._fleet_sweeper = sweeper

    def _sweep(self) -> None:  # HttpClient.request calls this once to arm its own timer: join ours
        self._sweeper = self._fleet_sweeper  # type: ignore[assignment]
        self._fleet_sweeper.start(self._loop)  # type: ignore[arg-type]

    async def request(self, method: str, url: str, **kwargs) -> Response:
        busy = self._fleet_sweeper.busy
        busy.add(self)
        try:
            return await super().request(method, url, **kwargs)
        finally:
            busy.discard(self)


class AgentClients:
    """The scenario's client: each request goes out on the serving agent's own client."""

    def __init__(self, phase_client: HttpClient, http_version: str) -> None:
        self._phase_client = phase_client  # requests outside an agent tick (none expected)
        self._clients: dict[int, object] = {}
        self._sweeper = _Sweeper()
        self._h2 = Http2Client if http_version in ("2", "auto") else None
        self._mode = http_version
        self.http_version = self._mode  # what new agents' clients offer: "2", "auto" or "1.1"
        self.timeout = phase_client.timeout  # the engine's default is the agent's 30 s (http.DEFAULT_TIMEOUT)
        self.created = 0  # agents that opened their client (= connected, or tried to)

    @property
    def ssl_context(self):
        return self._phase_client.ssl_context

    def client_for(self, agent: int):
        client = self._clients.get(agent)
        if client is None:
            ctx = self._phase_client.ssl_context
            if self._h2 is not None:
                client = self._h2(ctx, timeout=self.timeout, http_version=self._mode)
            else:
                client = FleetHttp1Client(self._sweeper, ctx, self.timeout)
            self._clients[agent] = client
            self.created += 1
        return client

    async def request(self, method: str, url: str, **kwargs) -> Response:
        try:
            agent = CURRENT_TICK.get().agent
        except LookupError:
            return await self._phase_client.request(method, url, **kwargs)
        resp = await self.client_for(agent).request(method, url, **kwargs)  # type: ignore[attr-defined]
        if self._mode == "auto" and resp.status and resp.http_version == "1.1":
            # the server picked http/1.1 by ALPN, as it will for every agent: later agents get the
            # fleet's 1.1 client at once (one timeout sweeper for all, not one per agent)
            self._h2, self._mode, self.http_version = None, "1.1", "auto -> 1.1"
        return resp

    def close(self) -> None:
        self._sweeper.stop()
        for client in self._clients.values():
            client.close()  # type: ignore[attr-defined]
        self._clients.clear()


class _Agent:
    __slots__ = ("busy", "failures", "free_at", "index", "meant_from", "ticks")

    def __init__(self, index: int) -> None:
        self.index = index
        self.busy = False
        self.failures = 0
        self.ticks = 0
        self.free_at = 0  # when its last tick ended (monotonic ns)
        self.meant_from = 0  # ticks that fired before this waited by the agent's design (start-up, backoff)


class AgentFleetExecutor:
    def __init__(self, runtime: ScenarioRuntime) -> None:
        self.runtime = runtime
        spec = runtime.spec
        self.timing: AgentTiming = spec.extra["agent_timing"]  # type: ignore[assignment]
        # an xdist share runs agents share_index, share_index + share_count, ... (as constant-vus splits)
        self._agents = [_Agent(i) for i in range(spec.share_index, self.timing.agents, spec.share_count)]
        seed = self.timing.seed
        self._seed = random.Random().getrandbits(64) if seed is None else seed
        self._clients = AgentClients(runtime.client, self.timing.http_version)
        runtime.client = self._clients  # type: ignore[assignment]  # the scenario's requests: per agent
        self._next_number = 0
        self._stopped = False
        self._ending = False
        self._stop_requested: asyncio.Future | None = None
        self.ticks = {"heartbeat": 0, "poll": 0}
        self.backoffs = 0
        self.interrupted_agents = 0

    async def run(self, t0_ns: int) -> None:
        # thousands of connections: run_phase keeps the heap frozen (gc_pauses.py), no full-heap pauses
        loop = asyncio.get_running_loop()
        spec = self.runtime.spec
        stop = self._stop_requested = loop.create_future()
        start = t0_ns + round(spec.start_offset * NS)
        end = start + round(spec.duration * NS)
        tasks = {loop.create_task(self._agent(a, start, end)) for a in self._agents}
        waits: set = {stop}
        finished = getattr(self.runtime.fn, "finished", None)
        if isinstance(finished, asyncio.Event):
            waits.add(loop.create_task(finished.wait()))
        try:
            if not self._stopped:
                await asyncio.wait(
                    waits, timeout=max(0.0, (end - monotonic_ns()) / NS), return_when="FIRST_COMPLETED"
                )
        finally:
            self._ending = True
            for w in waits:
                if isinstance(w, asyncio.Task):
                    w.cancel()
            busy = set()
            for task in tasks:
                if task.done():
                    continue
                agent = getattr(task, "certload_agent", None)
                if agent is not None and agent.busy:
                    busy.add(task)
                else:
                    task.cancel()  # waiting for its next tick: nothing in flight
            self.interrupted_agents = await graceful_stop(busy, spec.graceful_stop)
            idle = [t for t in tasks if not t.done()]
            if idle:
                await asyncio.wait(idle, timeout=5.0)
            self._clients.close()

    def stop(self) -> None:
        """No more ticks (abortOnFail); ticks in flight get the graceful stop."""
        self._stopped = True
        if self._stop_requested is not None and not self._stop_requested.done():
            self._stop_requested.set_result(None)

    async def _agent(self, agent: _Agent, start: int, end: int) -> None:
        asyncio.current_task().certload_agent = agent  # type: ignore[union-attr]
        timing = self.timing
        rng = random.Random(self._seed * 1_000_003 + agent.index)
        heartbeat = GoTicker(timing.heartbeat_interval, timing.jitter, start, rng)
        poll = GoTicker(timing.poll_interval, timing.jitter, start, rng)
        # start-up: sleep, heartbeat, sleep (from the heartbeat's end), poll (main.go:264-280)
        due = start + round(rng.random() * timing.first_heartbeat_within * NS)
        if not await self._sleep_until(due, end):
            return
        await self._serve(agent, "heartbeat", due, due)
        due = monotonic_ns() + round(rng.random() * timing.first_poll_within * NS)
        if not await self._sleep_until(due, end):
            return
        await self._serve(agent, "poll", due, due)
        agent.meant_from = due  # ticks fired during the start-up sleeps: the agent meant to wait
        tickers = (("heartbeat", heartbeat), ("poll", poll))
        while not self._ending:
            now = monotonic_ns()
            heartbeat.advance(now)
            poll.advance(now)
            ready = [(kind, t) for kind, t in tickers if t.buffered is not None]
            if not ready:
                nxt = min(t.next_fire for _, t in tickers if t.next_fire is not None)
                if not await self._sleep_until(nxt, end):
                    return
                continue
            kind, ticker = ready[0] if len(ready) == 1 else rng.choice(ready)  # Go's select: random
            fired = ticker.take(now)
            if kind == "poll" and agent.failures:
                backoff = min(agent.failures * timing.poll_interval, timing.backoff_cap)
                self.backoffs += 1
                self.runtime.recorder.count("agent_backoffs")
                if not await self._sleep_until(monotonic_ns() + round(backoff * NS), end):
                    return
                agent.meant_from = monotonic_ns()  # the agent chose to wait: the poll is due now
            await self._serve(agent, kind, fired, max(fired, agent.meant_from))

    async def _sleep_until(self, due_ns: int, end_ns: int) -> bool:
        """Sleep until ``due_ns``; False when the fleet ends first (end of duration or stopped)."""
        if due_ns >= end_ns or self._ending:
            if due_ns >= end_ns:
                delay = (end_ns - monotonic_ns()) / NS
                if delay > 0 and not self._ending:
                    await asyncio.sleep(delay)
            return False
        delay = (due_ns - monotonic_ns()) / NS
        if delay > 0:
            await asyncio.sleep(delay)
        return not self._ending

    async def _serve(self, agent: _Agent, kind: str, fired_ns: int, meant_ns: int) -> None:
        """Serve one tick. ``meant_ns``: when the agent meant to act on it (Go's timer fired, or the
        end of a sleep it chose); if its previous tick still ran then, the tick was due when that one
        ended -- the wait behind its own work is ``agent_tick_wait``, not generator lateness."""
        due = max(meant_ns, agent.free_at)
        rt = self.runtime
        rt.recorder.trend("agent_tick_wait", due - meant_ns, {"agent_step": kind})
        tick = Tick(agent.index, kind, due)
        CURRENT_TICK.set(tick)  # this agent's task only: its own context
        share = rt.spec
        number = self._next_number * share.share_count + share.share_index
        self._next_number += 1
        self.ticks[kind] += 1
        agent.busy = True
        try:
            await rt.run_iteration(agent.index + 1, number, due, True)
        finally:
            agent.busy = False
            agent.free_at = monotonic_ns()
        agent.ticks += 1
        # the real agent: a failed heartbeat or poll counts, any successful one resets (main.go:375-405)
        agent.failures = agent.failures + 1 if tick.failed else 0

    def meta(self) -> dict:
        spec = self.runtime.spec
        rt = self.runtime
        timing = self.timing
        per_agent = 1 / timing.heartbeat_interval + 1 / timing.poll_interval
        return {
            "executor": spec.executor,
            "share": [spec.share_index, spec.share_count],
            "schedule_seconds": spec.duration,
            "agents": len(self._agents),
            "agents_total": timing.agents,
            "agents_connected": self._clients.created,
            "agent_timing": timing.to_meta(),
            "http_version_requested": timing.http_version,
            "http_client": self._clients.http_version,
            "ticks": dict(self.ticks),
            "backoffs": self.backoffs,
            "interrupted_agents": self.interrupted_agents,
            # steady state: heartbeats + polls per second of this share's agents
            "target_rate": len(self._agents) * per_agent,
            "achieved_rate": rt.started / spec.duration if spec.duration else 0.0,
            "dropped_iterations": 0,  # Go's ticker never drops a tick: it waits (jitter.go:86-92)
        }
