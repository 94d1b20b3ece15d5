"""An agent fleet needs a socket per agent: the soft fd limit is raised, or the phase is refused first.

Each case runs in a child process (or an inner pytest session) that lowers its own limits, which any
process may do; this process's limits are never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_certload

pytest_plugins = ["pytester"]
REPO = Path(pytest_certload.__file__).resolve().parent.parent

CHILD = """
import json, resource, sys
from pytest_certload.engine.fdlimit import ensure_headroom
soft, hard = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
h = ensure_headroom(int(sys.argv[3]))
print(json.dumps({"soft": h.soft, "hard": h.hard, "open_now": h.open_now, "problem": h.problem()}))
"""


def headroom_in_child(soft: int, hard: int, needed: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(soft), str(hard), str(needed)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_soft_limit_is_raised_as_far_as_the_fleet_needs():
    result = headroom_in_child(256, 4096, 1000)
    assert result["problem"] is None
    assert result["open_now"] + 1000 + 128 <= result["soft"] <= 4096  # raised from 256, no further than asked
    assert result["soft"] < 4096


def test_a_fleet_beyond_the_hard_limit_is_refused_with_the_fix():
    result = headroom_in_child(300, 300, 1000)
    assert result["soft"] == 300
    problem = result["problem"]
    assert problem is not None
    assert "holds 1,000 connections" in problem and "the limit is 300 (hard limit 300" in problem
    assert "ulimit -n" in problem and "--ulimit nofile=" in problem


def test_an_unlimited_soft_limit_fits_any_fleet():
    import resource

    from pytest_certload.engine.fdlimit import FdHeadroom

    assert FdHeadroom(1_000_000, 20, resource.RLIM_INFINITY, resource.RLIM_INFINITY).problem() is None
    assert FdHeadroom(1_000, 20, 1_024, resource.RLIM_INFINITY).problem() is not None  # not raised yet


INNER_CONFTEST = """
import resource
resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
"""

INNER_TEST = """
import pytest


async def never(ctx):
    raise AssertionError("no agent may run: the phase is refused before it starts")


@pytest.mark.certload(executor="agent-fleet", agents=1000, duration="2s")
def test_fleet(certload):
    certload.run(never)
"""


def test_a_phase_that_cannot_fit_fails_before_it_starts(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "test_inner.py::test_fleet: this phase holds 1,000 connections at once" in out
    assert "the limit is 200 (hard limit 200" in out
    assert "Traceback" not in out and "no agent may run" not in out
