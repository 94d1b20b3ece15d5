"""The agent-fleet executor against a small local server: connections, cadence, backoff, early end."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiohttp import web

from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase
from pytest_certload.stack.model import Stack
from pytest_certload.stack.tls import make_tls_material


class FakeCertctl:
    """Heartbeat and work poll as certctl answers them; records (agent, step, client port)."""

    def __init__(self, tmp: Path, failing_polls: set[str] = frozenset()) -> None:
        self.tls = make_tls_material(tmp / "tls")
        self.failing_polls = failing_polls
        self.calls: list[tuple[str, str, int]] = []
        self.user_agents: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "fake certctl did not start"

    def _record(self, request: web.Request, step: str) -> str:
        agent = request.match_info["id"]
        self.calls.append((agent, step, request.transport.get_extra_info("peername")[1]))
        self.user_agents[request.headers.get("User-Agent", "")] += 1
        return agent

    async def heartbeat(self, request: web.Request) -> web.Response:
        self._record(request, "heartbeat")
        return web.json_response({"status": "heartbeat_recorded"})

    async def work(self, request: web.Request) -> web.Response:
        agent = self._record(request, "poll")
        if agent in self.failing_polls:
            return web.json_response({"error": "Failed to get pending work"}, status=500)
        return web.json_response({"jobs": [], "count": 0})

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/api/v1/agents/{id}/heartbeat", self.heartbeat)
        app.router.add_get("/api/v1/agents/{id}/work", self.work)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def stack(self) -> Stack:
        url = f"https://127.0.0.1:{self.port}"
        return Stack("external", url, "tok", self.tls.ca_cert, "unknown", owned=True)


@pytest.fixture
def fake(tmp_path):
    server = FakeCertctl(tmp_path)
    yield server
    server.stop()


def run_fleet(server: FakeCertctl, fleet: AgentFleet, **options):
    opts = {
        "executor": "agent-fleet",
        "duration": "2.5s",
        "heartbeat_interval": "1s",
        "poll_interval": "0.5s",
        "first_heartbeat_within": "0.5s",
        "first_poll_within": "0.25s",
        "graceful_stop": "2s",
        **options,
    }
    spec = ExecutorSpec.from_options(opts)
    ctx = make_ssl_context(server.tls.ca_cert)
    return run_phase([ScenarioRun("agent_fleet", spec, fleet)], ssl_context=ctx)


@pytest.mark.parametrize("version", ["1.1", "auto"])
def test_each_agent_keeps_one_connection_and_the_real_cadence(fake, version) -> None:
    ids = [f"ag-{i:03d}" for i in range(20)]
    m = run_fleet(fake, AgentFleet(fake.stack(), ids, http_version=version), agents=20, http_version=version)
    ports: dict[str, set[int]] = defaultdict(set)
    steps: Counter[tuple[str, str]] = Counter()
    for agent, step, port in fake.calls:
        ports[agent].add(port)
        steps[(agent, step)] += 1
    assert set(ports) == set(ids)
    assert all(len(p) == 1 for p in ports.values()), {a: p for a, p in ports.items() if len(p) > 1}
    assert len(set().union(*ports.values())) == 20  # one connection per agent, none shared
    # first heartbeat within 0.5 s, then every 1 s +-10 %: 2-3 in 2.5 s; polls about twice as many
    for agent in ids:
        assert 2 <= steps[(agent, "heartbeat")] <= 4, (agent, steps[(agent, "heartbeat")])
        assert 3 <= steps[(agent, "poll")] <= 7, (agent, steps[(agent, "poll")])
    meta = m.samples.meta["scenarios"]["agent_fleet"]
    assert meta["agents_connected"] == 20 and meta["backoffs"] == 0
    # tagged per step, and every tick's lateness is measured from its intended time
    assert m.samples.select_counter("http_reqs", {"agent_step": "heartbeat"}) == sum(
        n for (_, s), n in steps.items() if s == "heartbeat"
    )
    assert m.samples.trend_stats("iteration_start_lag")["count"] == sum(steps.values())
    assert set(fake.user_agents) == {"Go-http-client/1.1" if version == "1.1" else "Go-http-client/2.0"}


def test_failed_polls_back_the_agent_off_as_the_real_one(tmp_path) -> None:
    server = FakeCertctl(tmp_path, failing_polls={"ag-bad"})
    try:
        fleet = AgentFleet(server.stack(), ["ag-good", "ag-bad"])
        m = run_fleet(server, fleet, agents=2, duration="3s", seed=3)
    finally:
        server.stop()
    polls = Counter(agent for agent, step, _ in server.calls if step == "poll")
    # main.go:321-339: after n failures the poll waits n x poll_interval (0.5 s, 1 s, ...)
    assert polls["ag-bad"] < polls["ag-good"]
    assert m.samples.select_counter("agent_backoffs") >= 1
    assert m.samples.select_rate("http_req_failed", {"agent_step": "poll"})[0] > 0


def test_a_set_finished_event_ends_the_fleet_early(fake) -> None:
    fleet = AgentFleet(fake.stack(), ["ag-1", "ag-2"])

    class Ender:
        """Sets the fleet's event from inside the phase after its first heartbeat tick."""

        finished = fleet.finished

        async def __call__(self, ctx) -> None:
            await fleet(ctx)
            fleet.finished.set()

    m = run_fleet(fake, Ender(), agents=2, duration="30s")
    assert m.samples.meta["wall_seconds"] < 5
    assert len(fake.calls) <= 4


def test_summary_and_terminal_carry_fleet_size_and_connections(fake) -> None:
    from types import SimpleNamespace

    from pytest_certload.report.fleet import fleet_entries, fleet_lines

    m = run_fleet(fake, AgentFleet(fake.stack(), ["ag-1", "ag-2", "ag-3"]), agents=3, duration="1.5s")
    m.samples.counters[("connections_held", (("scenario", "probe"), ("side", "generator")))] = 3
    record = SimpleNamespace(samples=m.samples, nodeid="tests/x.py::test_x")
    entries = fleet_entries([record])
    assert len(entries) == 1 and entries[0]["agents"] == 3 and entries[0]["agents_connected"] == 3
    assert entries[0]["connections_held"] == {"generator": 3} and "drain" not in entries[0]
    (line,) = fleet_lines({"agent_fleet": entries})
    assert line == "agent_fleet: 3 agents (3 connected, http auto -> 1.1), connections held: generator 3"


# -- a large fleet's generator: collector pauses and loop stalls (engine/gc_pauses.py, health.py) ----


def test_frozen_heap_keeps_old_objects_out_of_collections_and_frees_cycles_after() -> None:
    """While a FrozenHeap is active the objects that were there are frozen (collections skip
    them); on exit they are unfrozen, so a cycle dropped meanwhile is collected afterwards."""
    import gc
    import weakref

    from pytest_certload.engine.gc_pauses import FrozenHeap

    class Node:
        pass

    async def go() -> tuple[int, int, bool]:
        held = [[i] for i in range(50_000)]  # tracked objects, like a fleet's connections
        cycle = Node()
        cycle.me = cycle  # type: ignore[attr-defined]
        gone = weakref.ref(cycle)
        with FrozenHeap(asyncio.get_running_loop(), every_s=0.05) as heap:
            frozen = gc.get_freeze_count()
            del cycle  # garbage only a cyclic collection can free: frozen, so kept until the end
            await asyncio.wait_for(_until(lambda: heap.freezes >= 3), 5)
            gc.collect()
            kept = gone() is not None
        assert len(held) == 50_000
        return frozen, gc.get_freeze_count(), kept

    frozen, after, kept_while_frozen = asyncio.run(go())
    assert frozen >= 50_000 and after == 0
    assert kept_while_frozen  # the documented cost: cyclic garbage waits for the end
    gc.collect()  # after the phase: collected as usual


async def _until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_a_loop_stall_counts_every_tick_it_swallowed() -> None:
    """A 300 ms stall in a 1.5 s phase is ~30 late ticks (300, 290, ... ms), not one sample that
    the p99 of ~180 samples would hide (h9: "lag p99 4 ms" while ticks waited 1.6 s)."""
    import time

    from pytest_certload.engine.health import HealthMonitor

    async def go():
        monitor = HealthMonitor()
        monitor.start()
        await asyncio.sleep(0.6)
        time.sleep(0.3)  # the stall (a collector pause, a blocking call) under test, not a wait
        await asyncio.sleep(0.6)
        return monitor.stop()

    health = asyncio.run(go())
    assert health.lag_max_ms >= 290
    assert health.lag_p99_ms >= 100, health
    assert health.saturated and "event-loop lag" in health.reason
