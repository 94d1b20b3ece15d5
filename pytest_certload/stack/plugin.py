"""pytest glue for the stack under test: options, the ``certload_stack`` fixture, teardown on signals.

Under pytest-xdist the first worker that needs the stack starts it (FileLock recipe from the
pytest-xdist docs) and writes its description; the others read it. The controller, which outlives
every worker, stops the stack once at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from pytest_certload.stack import process
from pytest_certload.stack.model import Stack, Target
from pytest_certload.stack.options import StackOptions, add_options, options_from_config
from pytest_certload.stack.process import ComponentFailed
from pytest_certload.stack.session import (
    StackSession,
    read_handle,
    read_shared,
    stop_by_handle,
    write_shared,
    write_shared_failure,
)

OPTIONS_KEY = pytest.StashKey[StackOptions]()
SESSIONS_KEY = pytest.StashKey[list[StackSession]]()
PREVIOUS_SIGTERM_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OPTIONS_KEY] = options_from_config(config)
    config.stash[SESSIONS_KEY] = []
    if threading.current_thread() is threading.main_thread():
        config.stash[PREVIOUS_SIGTERM_KEY] = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    """First SIGTERM: unwind like Ctrl-C so fixture finalizers stop the stack. Second: stop now."""
    signal.signal(signal.SIGTERM, _sigterm_stop_now)
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _sigterm_stop_now(signum: int, frame: object) -> None:
    process.stop_all()
    raise SystemExit(128 + signum)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the xdist controller: stop the stack a worker started and left running for the others."""
    config = session.config
    if hasattr(config, "workerinput") or not _xdist_active(config):
        return
    shared = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    handle = read_handle(shared)
    if handle is not None:
        stop_by_handle(handle)
        (shared / "certload-stack.handle.json").unlink(missing_ok=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last resort: whatever is still running from this process is stopped here."""
    for session in config.stash.get(SESSIONS_KEY, []):
        with contextlib.suppress(Exception):
            session.stop()
    process.stop_all()
    previous = config.stash.get(PREVIOUS_SIGTERM_KEY, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


def _xdist_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no")


@pytest.fixture(scope="session")
def certload_stack_options(pytestconfig: pytest.Config) -> StackOptions:
    """The parsed --certload-*/--certctl-* options."""
    return pytestconfig.stash[OPTIONS_KEY]


@pytest.fixture(scope="session")
def certload_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """The stack under test (docker, native or external), started once per run."""
    config = request.config
    opts = config.stash[OPTIONS_KEY]
    xdist_worker = hasattr(config, "workerinput")
    session = StackSession(opts, owner_pid=os.getppid() if xdist_worker else None)  # the controller
    config.stash[SESSIONS_KEY].append(session)
    if not xdist_worker:
        request.addfinalizer(session.stop)
        return session.start()

    shared: Path = tmp_path_factory.getbasetemp().parent
    with FileLock(str(shared / "certload-stack.lock")):
        existing = read_shared(shared)
        if isinstance(existing, Stack):
            return existing
        if isinstance(existing, str):
            pytest.fail(f"the certload stack failed to start in another worker:\n{existing}", pytrace=False)
        try:
            stack = session.start()
        except ComponentFailed as exc:
            write_shared_failure(shared, str(exc))
            raise
        if stack.owned:
            write_shared(shared, stack, session.handle())
            session.detach()  # the controller stops it after the last worker is done
        else:
            write_shared(shared, stack, session.handle())
        return stack


def require_target(stack: Stack, name: str) -> None:
    """Skip the calling test when ``name`` is not part of the stack, with the reason it is missing."""
    if name not in stack.targets:
        reason = stack.skipped.get(name, "not part of this stack")
        pytest.skip(f"target {name} unavailable: {reason}")


def require_owned_or_allowed(stack: Stack, config: pytest.Config) -> None:
    """Refuse scale and seeding scenarios against a stack the plugin does not own, unless allowed."""
    if stack.owned or config.stash[OPTIONS_KEY].allow_external_load:
        return
    pytest.fail(
        f"refusing to seed or load an external stack ({stack.certctl_url}): these scenarios write many rows "
        "and send heavy traffic. If this deployment is yours to load, pass --certload-allow-external-load.",
        pytrace=False,
    )


@pytest.fixture(name="require_target")
def require_target_fixture(certload_stack: Stack) -> Callable[[str], Target]:
    """``require_target("haproxy")`` skips the test (with the reason) unless the stack has that target."""

    def need(name: str) -> Target:
        require_target(certload_stack, name)
        return certload_stack.targets[name]

    return need


@pytest.fixture
def certload_owned_stack(certload_stack: Stack, pytestconfig: pytest.Config) -> Stack:
    """The stack, for scenarios that seed or load it: fails against an external stack unless allowed."""
    require_owned_or_allowed(certload_stack, pytestconfig)
    return certload_stack
