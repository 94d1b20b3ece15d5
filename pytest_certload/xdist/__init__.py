"""Scale-out with pytest-xdist: every load test runs on every worker, each with a share of its load.

One role per module, as pytest-xdist itself is laid out:

- :mod:`.mode`: is this run split (``-n``/``--tx`` with ``--dist load``, ``worksteal`` or ``each``);
- :mod:`.controller`: the controller's plugin: barrier server, scheduler, one report per load test;
- :mod:`.worker`: the worker's plugin: names its load tests, meets the others before each phase;
- :mod:`.barrier`: the per-phase start barrier (a small TCP server) and its wire protocol;
- :mod:`.scheduling`: load tests to every worker, in order, ahead of the rest;
- :mod:`.merge`: the workers' shares merged into one phase and one report;
- :mod:`.internals`: the private xdist names relied on, and the versions tested.

This package depends on the core (:mod:`pytest_certload.runner` through :mod:`pytest_certload.split`,
:mod:`pytest_certload.verdict`, :mod:`pytest_certload.session`); the core never imports it.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_certload.xdist.barrier import DEFAULT_BARRIER_TIMEOUT_S
from pytest_certload.xdist.mode import split_mode


def add_options(group: Any) -> None:
    """The split-mode options (called from the plugin's pytest_addoption)."""
    group.addoption(
        "--certload-controller-host",
        metavar="ADDR",
        default="127.0.0.1",
        help="pytest-xdist split mode: address the controller's phase barrier listens on; workers on "
        "other hosts (--tx socket=...) must reach it (default 127.0.0.1: local workers only)",
    )
    group.addoption(
        "--certload-barrier-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_BARRIER_TIMEOUT_S,
        help="pytest-xdist split mode: how long a worker waits for the others at a phase's start",
    )


def register(config: pytest.Config) -> None:
    """Register the controller's or the worker's plugin when this run splits load tests."""
    if not split_mode(config):
        return
    if hasattr(config, "workerinput"):
        from pytest_certload.xdist.worker import WorkerPlugin

        config.pluginmanager.register(WorkerPlugin(config), f"certload-xdist-worker-{id(config)}")
    elif config.pluginmanager.hasplugin("xdist"):
        from pytest_certload.xdist.controller import ControllerPlugin

        config.pluginmanager.register(ControllerPlugin(config), f"certload-xdist-controller-{id(config)}")


__all__ = ["add_options", "register", "split_mode"]
