"""The scale tier's seed knobs (K6_AGENT_RATE, K6_ACME_VUS, K6_VUS, ...): pytest_certload/seed_knobs.py."""

from __future__ import annotations

import pytest

from pytest_certload import seed_knobs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", seed_knobs.KNOBS_MARKER_HELP)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed_knobs.apply_executor_knobs(config, items)
