"""pytest glue for the stack under test: options, the ``certload_stack`` fixture, teardown on signals.

Under pytest-xdist the first worker that needs the stack starts it (FileLock recipe from the
pytest-xdist docs) and writes its description; the others read it. The controller, which outlives
every worker, stops the stack once at the end of the run. Generators on other hosts (``--tx
socket=...``) share no file system: they get the controller's stack with their workerinput.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from pytest_certload.stack import process
from pytest_certload.stack.choice import banner_lines, explicit_target
from pytest_certload.stack.choice import resolve as resolve_certctl
from pytest_certload.stack.health import StackHealth
from pytest_certload.stack.model import Stack, Target
from pytest_certload.stack.options import RELEASE_IMAGE, StackOptions, add_options, options_from_config
from pytest_certload.stack.postgres import PROFILE_TEXT
from pytest_certload.stack.process import ComponentFailed
from pytest_certload.stack.session import (
    DEFAULT_NAME,
    StackSession,
    read_handles,
    read_shared,
    stack_from_wire,
    stack_to_wire,
    stop_by_handle,
    write_shared,
    write_shared_failure,
)

OPTIONS_KEY = pytest.StashKey[StackOptions]()
#: the options with --certctl resolved (stack/choice.py): once per process, when a stack is first needed
RESOLVED_KEY = pytest.StashKey[StackOptions]()
#: the first stack this process started or attached to: its labels go on every test report using it
FIRST_STACK_KEY = pytest.StashKey[Stack]()
SESSIONS_KEY = pytest.StashKey[list[StackSession]]()
PREVIOUS_SIGTERM_KEY = pytest.StashKey[object]()
#: on the xdist controller: the stack it started for generators on other hosts (or why it failed)
CONTROLLER_STACK_KEY = pytest.StashKey[dict[str, "Stack | str"]]()
#: workerinput key: the controller's stack, sent to generators on other hosts
WORKERINPUT_STACK = "certload_stack"
#: the stacks this process started, by name (the default's and each variant's): health checks, faults
NAMED_SESSIONS_KEY = pytest.StashKey[dict[str, StackSession]]()
HEALTH_KEY = pytest.StashKey[StackHealth]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[OPTIONS_KEY] = options_from_config(config)
    config.stash[SESSIONS_KEY] = []
    config.stash[NAMED_SESSIONS_KEY] = {}
    config.stash[HEALTH_KEY] = StackHealth()


#: fixtures whose tests start processes or load phases: only then is SIGTERM worth handling
LOAD_FIXTURES = ("certload", "certload_stack")
#: fixtures that start (or attach to) a stack: only their tests settle --certctl, and carry its labels
STACK_FIXTURES = ("certload_stack", "certload_stack_variant")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """What the stack will be, from the options alone (nothing is looked up or pulled here)."""
    opts = config.stash[OPTIONS_KEY]
    if opts.certctl == "auto" and opts.certctl_bin is None:
        plan = (
            f"image {RELEASE_IMAGE} if Docker has it or can pull it, else the certctl stand-in "
            "(decided when a test first needs the stack)"
        )
    elif opts.certctl == "auto":
        plan = f"binary {opts.certctl_bin}"
    else:
        plan = explicit_target(opts)  # explicit: nothing to look up
    lines = [f"certload: certctl: {opts.certctl_given} -> {plan}"]
    if opts.provider != "external":
        profile = opts.pg_profile
        lines.append(f"certload: PostgreSQL profile: {profile} ({PROFILE_TEXT[profile]})")
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """When a selected test needs the stack: settle --certctl now and say what answers (the banner).

    Also: handle SIGTERM only in a run that selected a load test (a plain run keeps Python's default).
    Nothing happens in a run that only collects or lists, or selects no test needing a stack.
    """
    config = session.config
    names = [getattr(item, "fixturenames", ()) for item in session.items]
    needs_stack = any(n in fixtures for fixtures in names for n in STACK_FIXTURES)
    listing = config.option.collectonly or config.getoption("certload_list", False)
    if needs_stack and not listing and not hasattr(config, "workerinput"):
        resolved_options(config)
    if PREVIOUS_SIGTERM_KEY in config.stash or threading.current_thread() is not threading.main_thread():
        return
    if any(name in getattr(item, "fixturenames", ()) for item in session.items for name in LOAD_FIXTURES):
        config.stash[PREVIOUS_SIGTERM_KEY] = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def resolved_options(config: pytest.Config) -> StackOptions:
    """The options with --certctl settled, once per process; the banner goes to the terminal then.

    Under pytest-xdist a worker settles it when it first starts a stack (its output is not shown:
    the stack description carries the fallback reason to the controller's table and summary).
    """
    if RESOLVED_KEY not in config.stash:
        opts = resolve_certctl(config.stash[OPTIONS_KEY])
        config.stash[RESOLVED_KEY] = opts
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and not hasattr(config, "workerinput"):
            reporter.ensure_newline()
            for line in banner_lines(opts):
                reporter.write_line(line, yellow=opts.certctl == "standin", bold=bool(opts.fallback_reason))
    return config.stash[RESOLVED_KEY]


def stack_properties(stack: Stack) -> list[tuple[str, str]]:
    """What a test report (JUnit XML's properties) says of the stack it ran against."""
    props = [
        ("certload_target", stack.target_label),
        ("certload_caveat", stack.caveat),
        ("certload_fallback", stack.fallback_reason),
        ("certload_postgres", stack.postgres_label),
    ]
    return [(name, value) for name, value in props if value]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    """A test that used the stack carries its labels (stand-in caveat included) in its reports.

    Before it runs, the stacks it uses are checked (stack/health.py): dead certctl / PostgreSQL is
    restarted, anything else fails the test here with what died and its log tail.
    """
    health = item.config.stash[HEALTH_KEY]
    problem = health.ensure(item.nodeid, providers_of(item))
    for line in health.restarted:
        item.user_properties.append(("certload_stack_restarted", line))
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(line, yellow=True)
    health.restarted.clear()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        return (yield)
    finally:
        stack = item.config.stash.get(FIRST_STACK_KEY, None)
        if stack is not None and any(n in getattr(item, "fixturenames", ()) for n in STACK_FIXTURES):
            for prop in stack_properties(stack):
                if prop not in item.user_properties:
                    item.user_properties.append(prop)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """A stack component that died during the test fails the test, with its log tail."""
    try:
        return (yield)
    finally:
        message = item.config.stash[HEALTH_KEY].died_during(item.nodeid, providers_of(item))
        if message is not None:
            pytest.fail(message, pytrace=False)


def providers_of(item: pytest.Item) -> list[tuple[str, Any]]:
    """(name, provider) of the stacks this process started that ``item`` uses."""
    fixtures = getattr(item, "fixturenames", ())
    named = item.config.stash.get(NAMED_SESSIONS_KEY, {})
    used = []
    for name, session in named.items():
        fixture = "certload_stack" if name == DEFAULT_NAME else "certload_stack_variant"
        if fixture in fixtures and session.provider is not None:
            used.append((name, session.provider))
    return used


def provider_of(config: pytest.Config, stack: Stack) -> Any | None:
    """The provider that started ``stack`` in this process (restarts, faults), else None."""
    for session in config.stash.get(NAMED_SESSIONS_KEY, {}).values():
        if session.stack is stack:
            return session.provider
    return None


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    """First SIGTERM: unwind like Ctrl-C so fixture finalizers stop the stack. Second: stop now."""
    signal.signal(signal.SIGTERM, _sigterm_stop_now)
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _sigterm_stop_now(signum: int, frame: object) -> None:
    process.stop_all()
    raise SystemExit(128 + signum)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the xdist controller: stop the stacks workers started and left running for the others."""
    config = session.config
    if hasattr(config, "workerinput") or not _xdist_active(config):
        return
    shared = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    for path, handle in read_handles(shared).items():
        stop_by_handle(handle)
        path.unlink(missing_ok=True)


def _remote_generators(config: pytest.Config) -> bool:
    """Do any xdist workers run on other hosts (``--tx socket=...``, ``ssh=``, ``via``)?"""
    import execnet
    from xdist.workermanage import parse_tx_spec_config

    specs = [execnet.XSpec(s) for s in parse_tx_spec_config(config)]
    return any(not spec.popen or spec.via for spec in specs)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the xdist controller: generators on other hosts use the controller's stack, never their own.

    Such a worker shares no file system with the others, so the controller starts (or attaches to)
    the stack itself, once, and sends the description with the node's workerinput (the execnet
    channel that carries the tests themselves). Its URL must be reachable from those hosts: the
    stacks the plugin starts listen on loopback, so remote generators want ``--certload-stack=external``
    pointing at an address they reach. When any worker is remote, every worker gets the controller's
    stack, so all of them load one stack.
    """
    config = node.config
    if not _remote_generators(config):
        return
    stacks = config.stash.setdefault(CONTROLLER_STACK_KEY, {})
    if "stack" not in stacks:
        session = StackSession(resolved_options(config))
        config.stash[SESSIONS_KEY].append(session)  # stopped at unconfigure
        try:
            stacks["stack"] = session.start()
        except ComponentFailed as exc:
            stacks["stack"] = str(exc)
    stack = stacks["stack"]
    if isinstance(stack, str):
        node.workerinput[WORKERINPUT_STACK] = {"error": stack}
    else:
        public, secrets = stack_to_wire(stack)
        node.workerinput[WORKERINPUT_STACK] = {"public": public, "secrets": secrets}


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
    sent = getattr(config, "workerinput", {}).get(WORKERINPUT_STACK)
    if sent is not None:  # a generator on another host: the controller's stack
        if "error" in sent:
            pytest.fail(
                f"the certload stack failed to start in the controller:\n{sent['error']}", pytrace=False
            )
        stack = stack_from_wire(sent["public"], sent["secrets"])
        config.stash.setdefault(FIRST_STACK_KEY, stack)
        return stack
    return _start_shared(request, tmp_path_factory, DEFAULT_NAME)


@pytest.fixture(scope="session")
def certload_stack_variant(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Stack]:
    """``certload_stack_variant("rate-limited", rate_limit=True)``: a second stack with other options.

    Started once per run under its name (under pytest-xdist: by the first worker that asks, and
    shared by all), stopped at the end of the run.
    """
    config = request.config
    started: dict[str, Stack] = {}

    def variant(name: str, **changes: Any) -> Stack:
        if WORKERINPUT_STACK in getattr(config, "workerinput", {}):
            pytest.skip(f"stack variant {name!r}: generators on other hosts use only the controller's stack")
        if name not in started:
            started[name] = _start_shared(request, tmp_path_factory, f"{DEFAULT_NAME}-{name}", changes)
        return started[name]

    return variant


def _start_shared(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    changes: dict[str, Any] | None = None,
) -> Stack:
    """Start a stack for this run; under pytest-xdist the first worker starts it and the others use it.

    FileLock recipe from the pytest-xdist docs: the first worker to take the lock settles --certctl,
    starts the stack and writes its description; the others read it. The controller, which outlives
    every worker, stops it (pytest_sessionfinish above). ``changes``: a variant's options.
    """
    config = request.config
    xdist_worker = hasattr(config, "workerinput")

    def start() -> Stack:
        opts = dataclasses.replace(resolved_options(config), **(changes or {}))
        session = StackSession(opts, owner_pid=os.getppid() if xdist_worker else None)  # the controller
        config.stash[SESSIONS_KEY].append(session)
        if not xdist_worker:
            request.addfinalizer(session.stop)
            config.stash[NAMED_SESSIONS_KEY][name] = session  # health checks between tests
            return session.start()
        try:
            stack = session.start()
        except ComponentFailed as exc:
            write_shared_failure(shared, str(exc), name)
            raise
        write_shared(shared, stack, session.handle(), name)
        if stack.owned:
            session.detach()  # the controller stops it after the last worker is done
        return stack

    if not xdist_worker:
        return _first(config, start())
    shared: Path = tmp_path_factory.getbasetemp().parent
    with FileLock(str(shared / f"{name}.lock")):
        existing = read_shared(shared, name)
        if isinstance(existing, Stack):
            return _first(config, existing)
        if isinstance(existing, str):
            pytest.fail(f"the certload stack failed to start in another worker:\n{existing}", pytrace=False)
        return _first(config, start())


def _first(config: pytest.Config, stack: Stack) -> Stack:
    config.stash.setdefault(FIRST_STACK_KEY, stack)
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
