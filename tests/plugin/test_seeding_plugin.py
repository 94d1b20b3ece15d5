"""The pytest glue: ``certload_seed`` / ``certload_fleets`` in a real pytest run (pytester).

The inner session's ``certload_stack`` is overridden by a conftest that points at a fresh
database with the stand-in's schema, so only the seeding plugin is exercised. The inner runs are
subprocesses: an in-process run's stack plugin would stop every managed process at its end,
including this module's PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pytest_certload.seeding.databases import SchemaTemplates

pytest_plugins = ("pytester",)

REPO_SEEDS = Path(__file__).resolve().parents[2] / "seeds"

CONFTEST = """
import os
import pytest
from pytest_certload.stack.model import Secret, Stack

@pytest.fixture(scope="session")
def certload_stack():
    return Stack(kind="external", certctl_url="https://127.0.0.1:9", token=Secret("t"), ca_bundle=None,
                 server="stand-in", owned=os.environ["SEED_TEST_OWNED"] == "1",
                 dsn=Secret(os.environ["SEED_TEST_DSN"]))
"""

SCENARIOS = """
import pytest

@pytest.mark.certload(fleets=["agent_fleet", "acme_profile"])
def test_first_scenario(certload_fleets, certload_seed):
    agents = certload_fleets["agent_fleet"]
    assert (agents.inserted, agents.present) == (5000, 5000)
    assert agents.ids[0] == "ag-loadtest-00001" and agents.ids[-1] == "ag-loadtest-05000"
    assert certload_fleets["acme_profile"].present == 1
    assert certload_seed("agent_fleet") is agents

@pytest.mark.certload(fleets=["agent_fleet"])
def test_second_scenario_reuses_the_session_seed(certload_fleets):
    assert certload_fleets["agent_fleet"].inserted == 5000  # the first run's report: seeded once

def test_without_marker_seeds_nothing(certload_fleets):
    assert certload_fleets == {}
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, templates: SchemaTemplates, monkeypatch: pytest.MonkeyPatch):
    with templates.fresh("standin") as dsn:
        monkeypatch.setenv("SEED_TEST_DSN", dsn)
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_scenarios=SCENARIOS)
        # the inner suite uses this repository's fleet definitions (its own rootdir has no seeds/)
        pytester.makeini(f"[pytest]\ncertload_seeds = {REPO_SEEDS}\n")
        yield pytester, dsn


def agent_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM agents WHERE starts_with(id, 'ag-loadtest-')").fetchone()[0]


def test_marked_scenarios_get_their_fleets_seeded_once(inner, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester, dsn = inner
    monkeypatch.setenv("SEED_TEST_OWNED", "1")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*certload seeding*", "agent_fleet: 5000/5000 rows in agents (5000 new) via copy*"]
    )
    assert agent_count(dsn) == 5000


def test_external_stack_is_refused_without_the_flag(inner, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester, dsn = inner
    monkeypatch.setenv("SEED_TEST_OWNED", "0")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "first_scenario")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*refusing to seed*--certload-allow-external-load*"])
    assert agent_count(dsn) == 0
    allowed = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "first_scenario", "--certload-allow-external-load"
    )
    allowed.assert_outcomes(passed=1)
    assert agent_count(dsn) == 5000
