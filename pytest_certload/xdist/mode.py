"""Is this run splitting load tests across pytest-xdist workers? (decided once, at configure)."""

from __future__ import annotations

import math
import re

import pytest

#: xdist --dist modes in which load tests are split across the workers; the others (loadscope,
#: loadfile, loadgroup) keep xdist's scheduler and run each load test whole on one worker
SPLIT_DIST_MODES = ("load", "worksteal", "each")
#: workerinput key holding the controller's barrier address ("host:port"), set only in split mode
WORKERINPUT_KEY = "certload_controller"


def split_mode(config: pytest.Config) -> bool:
    """On a controller: does it split load tests? On a worker: did its controller say so?"""
    if hasattr(config, "workerinput"):
        return WORKERINPUT_KEY in config.workerinput  # type: ignore[attr-defined]
    dist = getattr(config.option, "dist", "no")
    return bool(getattr(config.option, "tx", None)) and dist in SPLIT_DIST_MODES


def worker_order(wid: str) -> tuple[float, str]:
    """gw0, gw1, ..., gw10 in numeric order (other ids last)."""
    match = re.fullmatch(r"gw(\d+)", wid)
    return (int(match.group(1)) if match else math.inf, wid)
