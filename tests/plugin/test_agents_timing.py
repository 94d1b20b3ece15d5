"""The agent-fleet timing: Go's jittered ticker, its one-tick buffer, the options' checks."""

from __future__ import annotations

import random
import re

import pytest

from pytest_certload.engine.agent_timing import NS, GoTicker, parse_agent_timing
from pytest_certload.engine.durations import ExecutorOptionError
from pytest_certload.engine.spec import ExecutorSpec


def test_ticks_are_the_interval_within_the_jitter_drawn_uniformly() -> None:
    ticker = GoTicker(30.0, 0.10, 0, random.Random(7))
    gaps, last = [], 0
    for _ in range(5000):
        ticker.advance(ticker.next_fire)
        fired = ticker.take(ticker.buffered)
        gaps.append((fired - last) / NS)
        last = fired
    assert 27.0 <= min(gaps) < 27.1 and 32.9 < max(gaps) <= 33.0  # +-10 %, reaching both ends
    assert sum(gaps) / len(gaps) == pytest.approx(30.0, abs=0.05)
    # uniform, not bunched in the middle: each fifth of the band holds about a fifth of the draws
    fifths = [sum(27 + 1.2 * k <= g < 27 + 1.2 * (k + 1) for g in gaps) / len(gaps) for k in range(5)]
    assert all(0.17 < f < 0.23 for f in fifths), fifths


def test_a_busy_agent_gets_one_buffered_tick_and_the_ticker_waits_for_it() -> None:
    """jitter.go: the channel buffers one tick; the goroutine blocks on the next until it is taken."""
    ticker = GoTicker(10.0, 0.0, 0, random.Random(1))
    ticker.advance(35 * NS)  # ticks due at 10, 20, 30 while nobody reads
    assert ticker.buffered == 10 * NS and ticker.next_fire is None  # 10 buffered, 20 blocked
    assert ticker.take(35 * NS) == 10 * NS
    assert ticker.buffered == 20 * NS  # the blocked tick entered the buffer as we took the first
    assert ticker.next_fire == 45 * NS  # and the next timer started when the send succeeded
    assert ticker.take(36 * NS) == 20 * NS and ticker.buffered is None
    ticker.advance(44 * NS)
    assert ticker.buffered is None
    ticker.advance(45 * NS)
    assert ticker.buffered == 45 * NS


def test_first_tick_is_one_jittered_interval_after_start() -> None:
    firsts = [GoTicker(60.0, 0.1, 5 * NS, random.Random(i)).next_fire / NS for i in range(2000)]
    assert 59.0 <= min(firsts) < 59.1 and 70.9 < max(firsts) <= 71.0


def test_marker_options_parse_with_the_real_agents_defaults() -> None:
    spec = ExecutorSpec.from_options({"executor": "agent-fleet", "agents": 1000, "duration": "90s"})
    timing = spec.extra["agent_timing"]
    assert (timing.heartbeat_interval, timing.poll_interval, timing.jitter) == (60.0, 30.0, 0.1)
    assert (timing.first_heartbeat_within, timing.first_poll_within) == (60.0, 30.0)
    assert timing.http_version == "auto" and spec.vus == 1000 and timing.backoff_cap == 300.0
    short = parse_agent_timing({"agents": 5, "heartbeat_interval": "2s", "poll_interval": "1s"})
    assert (short.first_heartbeat_within, short.first_poll_within) == (2.0, 1.0)  # default to the intervals


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"agents": 0}, "agents=0"),
        ({"agents": True}, "agents=True"),
        ({"agents": 5, "jitter": 1.0}, "jitter=1.0"),
        ({"agents": 5, "http_version": "3"}, "http_version"),
        ({"agents": 5, "poll_interval": "soon"}, "poll_interval"),
        ({"agents": 5, "seed": "x"}, "seed='x'"),
    ],
)
def test_bad_options_name_the_option(options, says) -> None:
    with pytest.raises(ExecutorOptionError, match=re.escape(says)):
        ExecutorSpec.from_options({"executor": "agent-fleet", "duration": "5s", **options})


def test_agent_fleet_needs_agents_and_duration_and_knows_no_rate() -> None:
    with pytest.raises(ExecutorOptionError, match="missing required option"):
        ExecutorSpec.from_options({"executor": "agent-fleet", "duration": "5s"})
    with pytest.raises(ExecutorOptionError, match="unknown option"):
        ExecutorSpec.from_options({"executor": "agent-fleet", "agents": 3, "duration": "5s", "rate": 3})
