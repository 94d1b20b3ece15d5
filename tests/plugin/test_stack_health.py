"""A stack component that dies during a test fails that test with its log tail; the next test gets a
restarted stack (certctl, PostgreSQL) or a clear error (anything else) -- never a half-dead stack.

The inner session runs a native stack with the stand-in (local processes, a few seconds to start).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pytest_certload
from pytest_certload.stack.health import StackHealth

pytest_plugins = ["pytester"]

REPO = Path(pytest_certload.__file__).resolve().parent.parent

SUITE = """
import signal

import pytest

from pytest_certload.stack.plugin import provider_of
from pytest_certload.stack.probes import https_get


def process(pytestconfig, stack, name):
    provider = provider_of(pytestconfig, stack)
    return next(p for p in provider.processes if p.name == name)


def kill(proc):
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(10)


def test_1_certctl_dies(pytestconfig, certload_stack):
    kill(process(pytestconfig, certload_stack, "certctl stand-in"))


def test_2_gets_it_back(certload_stack):
    assert https_get(certload_stack.certctl_url, "/health", str(certload_stack.ca_bundle))[0] == 200


def test_3_f5_dies(pytestconfig, certload_stack):
    kill(process(pytestconfig, certload_stack, "f5"))


def test_4_after_it(certload_stack):
    pass


def test_5_no_stack_needed():
    pass


def test_6_later(certload_stack):
    pass
"""


@pytest.fixture(autouse=True)
def _inner_sessions_use_this_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def test_a_dead_component_fails_its_test_then_is_restarted_or_reported(pytester):
    pytester.makepyfile(test_health=SUITE)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--certload-stack=native",
        "--certctl=standin",
        "--certload-pg-profile=fast",
        "-rA",
        "--junitxml=j.xml",
    )
    result.assert_outcomes(passed=2, failed=2, errors=2)
    out = result.stdout.str()
    # the test during which certctl died fails, naming it, how it ended and its log's tail
    assert "FAILED test_health.py::test_1_certctl_dies" in out
    assert "a stack component died during test_health.py::test_1_certctl_dies" in out
    assert "certctl stand-in killed by signal 9" in out
    assert "last lines of its log" in out
    # the next test got certctl restarted (and says so), and it answered
    assert "PASSED test_health.py::test_2_gets_it_back" in out
    assert "certctl stand-in had died (killed by signal 9); restarted before test_health.py::test_2" in out
    junit = (pytester.path / "j.xml").read_text()
    assert 'name="certload_stack_restarted"' in junit
    # the F5 mock is not restarted: its death fails its test, and every later stack test errors clearly
    assert "FAILED test_health.py::test_3_f5_dies" in out
    assert "ERROR test_health.py::test_4_after_it" in out
    assert "ERROR test_health.py::test_6_later" in out
    assert "the certload stack 'certload-stack' is broken: f5 killed by signal 9" in out
    assert "PASSED test_health.py::test_5_no_stack_needed" in out


class FakeProvider:
    """A provider whose components die and come back on demand."""

    def __init__(self, dead: dict[str, str], restart_fails: bool = False) -> None:
        self.dead, self.restart_fails, self.restarted = dict(dead), restart_fails, []

    def dead_components(self) -> dict[str, str]:
        return dict(self.dead)

    def restart_component(self, name: str, signum: int = 15) -> float:
        from pytest_certload.stack.process import ComponentFailed

        if self.restart_fails:
            raise ComponentFailed(name, "cmd", "not ready after 60 s", "tail line")
        self.restarted.append(name)
        self.dead = {k: v for k, v in self.dead.items() if not k.startswith(name)}
        return 0.5


def test_a_failed_restart_leaves_the_stack_broken_for_every_later_test():
    health = StackHealth()
    provider = FakeProvider({"postgresql": "exited with code 1\n  last lines of its log:\n    FATAL"}, True)
    first = health.ensure("t1", [("s", provider)])
    assert first is not None and "postgresql exited with code 1" in first and "not ready after 60 s" in first
    provider.restart_fails = False  # even if it would work now: the run keeps its verdict on the stack
    assert health.ensure("t2", [("s", provider)]) == first


def test_a_restart_that_works_is_noted_and_the_stack_is_whole_again():
    health = StackHealth()
    provider = FakeProvider({"certctl stand-in": "killed by signal 9\n  last lines of its log:\n"})
    assert health.ensure("t1", [("s", provider)]) is None
    assert provider.restarted == ["certctl"]
    assert health.restarted and "restarted before t1, ready in 0.5 s" in health.restarted[0]
    assert health.died_during("t1", [("s", provider)]) is None


HANDLE_SUITE = """
import json

from pytest_certload.stack.plugin import NAMED_SESSIONS_KEY, provider_of
from pytest_certload.stack.session import HANDLE_FILE


def test_the_handle_file_follows_restarts(pytestconfig, certload_stack):
    [session] = [s for s in pytestconfig.stash[NAMED_SESSIONS_KEY].values() if s.stack is certload_stack]
    provider = provider_of(pytestconfig, certload_stack)
    path = session.workdir / HANDLE_FILE

    def pid(name):
        return next(p for p in provider.processes if p.name == name).popen.pid

    def named():
        return {entry["pid"] for entry in json.loads(path.read_text())["processes"]}

    for component, name in (("certctl", "certctl stand-in"), ("postgresql", "postgresql")):
        old = pid(name)
        assert old in named()
        provider.restart_component(component)
        new = pid(name)
        assert new != old
        assert new in named() and old not in named(), (component, old, new, named())
"""


def test_a_restarted_process_is_in_the_handle_a_later_session_reaps_by(pytester):
    pytester.makepyfile(test_handle=HANDLE_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--certload-stack=native", "--certctl=standin", "--certload-pg-profile=fast"
    )
    result.assert_outcomes(passed=1)
