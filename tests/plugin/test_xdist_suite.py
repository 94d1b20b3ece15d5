"""This repository's API and connector suites under ``-n 2`` give the verdicts they give without it.

What a new user tries first: every load test (marked or not, ``run`` or ``run_many``, with a stack of
its own like the rate limiter) either splits across the workers or runs whole on one; none waits at a
barrier for workers that don't run it; custom assertions (the limiter's 429 arithmetic) hold on the
merged phase. Runs the real suites in subprocesses, on the native stack with the stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_suite(tmp_path: Path, name: str, *extra: str) -> tuple[dict[str, str], dict]:
    junit, summary = tmp_path / f"{name}.xml", tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/api", "tests/connector",
            "-m", "api or connector", "--certload-duration=3s", "--certload-stack=native",
            "--certload-barrier-timeout=120", f"--junitxml={junit}", f"--certload-summary={summary}", *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )  # fmt: skip
    assert junit.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        verdict = "passed"
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                verdict = kind
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = verdict
    return outcomes, json.loads(summary.read_text())


@pytest.mark.skipif(sys.platform != "linux", reason="the native stack needs Linux")
def test_api_and_connector_suites_split_across_two_workers_like_one_process(tmp_path: Path) -> None:
    single, single_doc = run_suite(tmp_path, "single")
    split, split_doc = run_suite(tmp_path, "split", "-n", "2")
    assert split == single, f"with -n 2: {split}\nwithout: {single}"
    assert set(single.values()) <= {"passed", "skipped"} and "passed" in single.values()
    # each scenario ran once (not once per worker), at its full rate, on both workers
    assert set(split_doc["scenarios"]) == set(single_doc["scenarios"])
    for name, entry in split_doc["scenarios"].items():
        assert entry["ok"] == single_doc["scenarios"][name]["ok"], name
        assert entry["requests"] == single_doc["scenarios"][name]["requests"], name
    split_health = [h for h in split_doc["generator_health"] if "workers" in h]
    assert split_health and all(set(h["workers"]) == {"gw0", "gw1"} for h in split_health)
