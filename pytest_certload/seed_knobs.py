"""The original harness's environment knobs as pytest options, with the same meaning.

certctl's k6 scripts read ``K6_AGENT_FLEET``, ``K6_AGENT_RATE`` (agent_storm.js), ``K6_ACME_VUS``,
``K6_ACME_DURATION`` (acme_burst.js), ``K6_VUS``, ``K6_DURATION`` (acme_flow.js) and
``CERTCTL_ACME_DIRECTORY`` (both ACME scripts). Each is a ``--certload-*`` option here; when the
option is not given the original's environment variable is read, so ``K6_VUS=50 pytest -m acme``
does what ``K6_VUS=50 k6 run acme_flow.js`` did. Unset, the scenario keeps the original's default
(which is what its ``certload`` marker says).

Knobs that change an executor option (rate, vus, duration) are applied to a test's ``certload``
marker at collection (:func:`apply_executor_knobs`, for tests marked
``@pytest.mark.certload_knobs(rate="agent_rate")``), so ``--certload-list``, the summary's options
and pytest-xdist's shares all see the value; ``--certload-duration``, when given, still wins over
a duration knob. The others are read by the tests with :func:`knob_value`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_certload.engine.durations import ExecutorOptionError, parse_duration

#: the marker that maps a test's executor options to knobs: certload_knobs(rate="agent_rate")
KNOBS_MARKER = "certload_knobs"
KNOBS_MARKER_HELP = (
    f"{KNOBS_MARKER}(option=knob, ...): set the test's certload executor option from a seed knob "
    "(pytest_certload.seed_knobs), e.g. certload_knobs(rate='agent_rate')"
)


@dataclass(frozen=True)
class Knob:
    """One knob: its option, the original's environment variable, and how its value reads."""

    name: str  # what tests and certload_knobs(...) call it
    env: str  # the original harness's variable
    kind: str  # "count" (whole number >= 1), "rate" (number > 0), "duration", "url"
    seed_default: str
    help: str

    @property
    def option(self) -> str:
        return "--certload-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "certload_" + self.name


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("agent_fleet", "K6_AGENT_FLEET", "count", "5000",
             "agent_storm: agents the heartbeats are spread over (ids 1..N of agent_fleet; "
             "more than the fleet file holds grows the fleet)"),
        Knob("agent_rate", "K6_AGENT_RATE", "rate", "167", "agent_storm: heartbeats per second"),
        Knob("acme_burst_vus", "K6_ACME_VUS", "count", "200", "acme_burst: concurrent clients (vus)"),
        Knob("acme_burst_duration", "K6_ACME_DURATION", "duration", "5m", "acme_burst: duration"),
        Knob("acme_flow_vus", "K6_VUS", "count", "100", "acme_flow: concurrent clients (vus)"),
        Knob("acme_flow_duration", "K6_DURATION", "duration", "5m", "acme_flow: duration"),
        Knob("acme_directory", "CERTCTL_ACME_DIRECTORY", "url",
             "<certctl>/acme/profile/prof-test/directory",
             "acme_burst and acme_flow: the ACME directory URL (the admin key is sent only to the "
             "stack's own origin)"),
    )
}  # fmt: skip


def add_knob_options(parser: pytest.Parser) -> None:
    """Register every knob as a ``--certload-*`` option (called from the plugin's pytest_addoption)."""
    group = parser.getgroup("certload-knobs", "certload: the original k6 harness's environment knobs")
    for knob in KNOBS.values():
        group.addoption(
            knob.option,
            dest=knob.dest,
            default=None,
            metavar=knob.env,
            help=f"{knob.help} (env {knob.env}; the original's default: {knob.seed_default})",
        )


def parse_knob(knob: Knob, text: str, where: str) -> Any:
    """A knob's text as its value; raise pytest.UsageError naming the option or variable."""
    text = text.strip()
    try:
        if knob.kind == "count":
            value = int(text)
            if value < 1:
                raise ValueError
            return value
        if knob.kind == "rate":
            number = float(text)
            if not number > 0 or number == float("inf"):
                raise ValueError
            return int(number) if number.is_integer() else number
        if knob.kind == "duration":
            parse_duration(text, knob.name)
            return text
    except (ValueError, ExecutorOptionError):
        wanted = {"count": "a whole number >= 1", "rate": "a number > 0", "duration": "a k6 duration"}
        raise pytest.UsageError(f"{where}={text!r}: expected {wanted[knob.kind]}") from None
    if not text.startswith(("https://", "http://")):
        raise pytest.UsageError(f"{where}={text!r}: expected an http(s) URL")
    return text


def knob_value(config: pytest.Config, name: str) -> Any | None:
    """The knob's value: the option, else the original's environment variable, else None."""
    knob = KNOBS[name]
    given = config.getoption(knob.dest, default=None)  # None too when the option is not registered
    if given is not None:
        return parse_knob(knob, str(given), knob.option)
    env = os.environ.get(knob.env, "")
    if env.strip():
        return parse_knob(knob, env, knob.env)
    return None


def executor_overrides(config: pytest.Config, mapping: dict[str, str]) -> dict[str, Any]:
    """``{executor option: knob}`` -> ``{executor option: value}`` for the knobs that are set."""
    out = {}
    for key, name in mapping.items():
        if name not in KNOBS:
            raise pytest.UsageError(
                f"{KNOBS_MARKER}({key}={name!r}): unknown knob; known: {', '.join(sorted(KNOBS))}"
            )
        value = knob_value(config, name)
        if value is not None:
            out[key] = value
    return out


def apply_executor_knobs(config: pytest.Config, items: Iterable[pytest.Item]) -> None:
    """Put set knobs into the ``certload`` marker of tests marked ``certload_knobs(...)``.

    The test's merged marker with the knobs' values becomes its closest ``certload`` marker, and its
    options are parsed again as the plugin parsed them at collection (a bad value is a usage error
    naming the test).
    """
    from pytest_certload.scenario_options import ScenarioOptionError, marker_options, parse_scenario_options
    from pytest_certload.session import DURATION, OPTIONS

    for item in items:
        mark = item.get_closest_marker(KNOBS_MARKER)
        if mark is None:
            continue
        overrides = executor_overrides(config, dict(mark.kwargs))
        if not overrides:
            continue
        # the whole merged marker, not just the override: fixtures read the closest marker alone
        merged = {**(marker_options(item) or {}), **overrides}
        item.add_marker(pytest.mark.certload(**merged), append=False)
        try:
            item.stash[OPTIONS] = parse_scenario_options(merged, config.stash[DURATION])
        except ScenarioOptionError as exc:
            raise pytest.UsageError(f"{item.nodeid}: seed knobs {overrides}: {exc}") from None
