"""N simulated certctl agents at the real agent's cadence, one connection each (issue 13 §3).

Each agent heartbeats every 60 s and polls for work every 30 s (+-10 % jitter, random start offsets,
Go's ticker semantics: pytest_certload/engine/agent_timing.py) over its own persistent connection
(h2 and http/1.1 offered by ALPN, as Go's ForceAttemptHTTP2: HTTP/2 against certctl). Thresholds are on the
heartbeat and work-poll latencies (from each tick's intended time: coordinated-omission corrected)
and the error rate; a probe beside the fleet counts the established connections to certctl's port
from this process and from certctl's own (native: its PID; docker: the container's /proc/net/tcp),
and the test asserts they are N.

``--certload-duration`` shortens the phase (CI: 3 s). Below SHORT_RUN_S it checks the machinery,
not the server: the fleet is capped to SHORT_RUN_AGENTS agents and the intervals are SHORT_RUN_*;
the test says so on its output. A longer override keeps the real intervals and fits the first
heartbeats into the first half of the phase, so every agent connects while the probe looks.
``split=False``: under pytest-xdist one worker holds the whole fleet (the probe counts its own
process's connections); benchmarks/bench_agents.py measures a fleet split over two processes.
"""

from __future__ import annotations

import pytest

from pytest_certload.agents.fleet import AgentFleet
from pytest_certload.scenarios import agents as agent_scenarios
from pytest_certload.session import DURATION

FLEET_SIZES = (1000, 5000, 20000)
SHORT_RUN_S = 20.0
SHORT_RUN_AGENTS = 100  # ~150 requests/s: what the seed's agent_storm sends in CI, no more
SHORT_RUN_TIMING = {
    "heartbeat_interval": "2s",
    "poll_interval": "1s",
    "first_heartbeat_within": "1s",
    "first_poll_within": "0.5s",
}
LATENCY = ["p(95)<500", "p(99)<1000"]
FLEET_THRESHOLDS = {
    "http_req_duration{agent_step:heartbeat}": LATENCY,
    "http_req_duration{agent_step:poll}": LATENCY,
    "http_req_failed": ["rate<0.001"],
}


def fleet_plan(config: pytest.Config, agents: int, duration_s: float) -> tuple[int, dict, str | None]:
    """(agents, agent-fleet timing options, a note when the run is shortened)."""
    override = config.stash[DURATION]  # --certload-duration in seconds, None when not given
    if override is not None and override < SHORT_RUN_S:
        n = min(agents, SHORT_RUN_AGENTS)
        note = (
            f"agent fleet SHORTENED for --certload-duration={override:g}s: {n} of {agents} agents, "
            f"heartbeat {SHORT_RUN_TIMING['heartbeat_interval']}, poll {SHORT_RUN_TIMING['poll_interval']} "
            "(a functional check, not certctl's capacity)"
        )
        return n, dict(SHORT_RUN_TIMING), note
    timing = {"first_heartbeat_within": f"{min(60.0, duration_s / 2):g}s"}
    return agents, timing, None


def phase_seconds(config: pytest.Config, marker: dict) -> float:
    """The phase's length: --certload-duration, else the marker's ``duration``."""
    from pytest_certload.engine.durations import parse_duration

    override = config.stash[DURATION]
    return float(override) if override is not None else parse_duration(marker["duration"])


def seed_agents(stack, seeds_dir, count: int) -> list[str]:
    """The agent_fleet fleet grown to ``count`` rows (idempotent), Online with a fresh heartbeat."""
    from pytest_certload.seeding.agent_bound import refresh_agents
    from pytest_certload.seeding.copy_writer import seed_fleet
    from pytest_certload.seeding.fleet import load_fleet
    from pytest_certload.stack.secret import connect_pg

    if not stack.dsn:
        pytest.skip("the agent fleet is seeded in SQL: this stack has no database DSN")
    fleet = load_fleet("agent_fleet", seeds_dir)
    fleet = fleet.with_count(max(count, 1))
    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        ids = list(seed_fleet(conn, fleet).ids)[:count]
        refresh_agents(conn, ids)  # certctl: a heartbeat from an Offline agent restores a stale timestamp
        conn.commit()
    return ids


@pytest.mark.scale
@pytest.mark.parametrize("size", [pytest.param(n, id=str(n)) for n in FLEET_SIZES])
@pytest.mark.certload(duration="90s", graceful_stop="5s", split=False)  # run_many defaults
def test_agent_fleet(certload, certload_stack, certload_seeds_dir, size, request, capsys):
    duration = phase_seconds(request.config, certload.options.raw)
    agents, timing, note = fleet_plan(request.config, size, duration)
    if note:
        with capsys.disabled():
            print(f"\n  {note}")
        request.node.user_properties.append(("agent_fleet_shortened", note))
    ids = seed_agents(certload_stack, certload_seeds_dir, agents)
    fleet = AgentFleet(certload_stack, ids)
    connected_by = float(str(timing["first_heartbeat_within"]).rstrip("s")) + 0.3
    probe, readings = agent_scenarios.connection_probe(certload_stack, duration, first_after_s=connected_by)
    held = [f"count>={agents}"]
    result = certload.run_many(
        {
            "agent_fleet": (
                fleet,
                {"executor": "agent-fleet", "agents": agents, **timing, "thresholds": FLEET_THRESHOLDS},
            ),
            "connection_probe": (
                probe,
                {
                    "executor": "constant-vus",
                    "vus": 1,
                    "max_iterations": 1,
                    "thresholds": {"connections_held{side:generator}": held},
                },
            ),
        }
    )
    meta = result.phase.samples.meta["scenarios"]["agent_fleet"]
    request.node.user_properties.append(("agent_fleet", {**meta, "connections": readings.__dict__}))
    assert meta["agents_connected"] == agents, f"{meta['agents_connected']} of {agents} agents connected"
    assert meta["ticks"]["heartbeat"] >= agents and meta["ticks"]["poll"] >= agents, meta["ticks"]
    result.assert_thresholds()
    assert readings.generator >= agents, (
        f"this process held {readings.generator} established connections to certctl's port, "
        f"expected one per agent ({agents}); samples (s, generator, certctl): {readings.samples}"
    )
    if readings.certctl is None:
        request.node.user_properties.append(("connections_certctl_side", f"not counted: {readings.how}"))
    else:
        assert readings.certctl >= agents, (
            f"certctl's side held {readings.certctl} established connections ({readings.how}), "
            f"expected at least {agents}; samples: {readings.samples}"
        )
