"""This repository's own suite: the markers of certctl's scenario tiers.

They belong to this suite, not to the plugin: a project that installs pytest-certload gets only the
plugin's ``certload`` marker and chooses its own names. ``pytest -m scale`` selects the scale tier.
So do the seed's knobs (``--certload-agent-rate`` = ``K6_AGENT_RATE``, ...): they tune this suite's
scenarios (``pytest_certload/seed_knobs.py``; ``tests/scale/conftest.py`` applies them).
"""

from __future__ import annotations

import pytest

from pytest_certload import seed_knobs

pytest_plugins = ["pytester"]  # the plugin's own tests run inner pytest sessions

SUITE_MARKERS = {
    "api": "certctl API-tier load scenario",
    "connector": "connector-tier load scenario (TLS targets: nginx, apache, haproxy, F5 mock)",
    "scale": "scale-tier load scenario (seeded fleets, bursts, storms)",
    "acme": "ACME load scenario",
    "faults": "fault scenario: a restart, a slow database or a bad network injected under load",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in SUITE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_addoption(parser: pytest.Parser) -> None:
    """The original k6 harness's environment knobs (K6_VUS, K6_AGENT_RATE, ...) as options."""
    seed_knobs.add_knob_options(parser)
