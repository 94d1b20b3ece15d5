"""A phase cut short by Ctrl-C or SIGTERM still leaves what it measured in the summary, marked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import calibration  # tests/plugin/calibration.py
import pytest

LONG_PHASE = """
import pathlib
import pytest

@pytest.mark.certload(executor="constant-arrival-rate", rate=100, time_unit="1s", duration="120s",
                      pre_allocated_vus=4, thresholds={"iterations": ["count>0"]})
def test_long(certload):
    started = pathlib.Path("started")

    async def iteration(ctx):
        ctx.counter("ran", 1)
        if not started.exists():
            started.write_text("the phase is running")

    certload.run(iteration).assert_thresholds()
"""


def wait_for(path, proc: subprocess.Popen, deadline_s: float) -> None:
    """Until the inner run's first iteration wrote ``path`` (or the run ended, or time ran out)."""
    deadline = time.monotonic() + deadline_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the inner run ended early with {proc.returncode}: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the inner run never started its phase")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_phase_is_in_the_summary(pytester: pytest.Pytester, signum: int) -> None:
    pytester.makeini(calibration.RELAXED_HEALTH_INI)
    pytester.makepyfile(test_long=LONG_PHASE)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--certload-summary=s.json",
            "test_long.py",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(pytester.path / "started", proc, 60)
        begun = time.monotonic()
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - begun < 30, "the phase ran on after the signal"
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    doc = json.loads((pytester.path / "s.json").read_text())
    assert doc["state"]["interrupted"] is True
    entry = doc["scenarios"]["test_long"]
    assert entry["interrupted"] and "KeyboardInterrupt" in entry["interrupted"]
    # what ran before the signal is there: some iterations, far fewer than the 12,000 scheduled
    assert 0 < entry["iterations"] < 12_000
    assert doc["generator_health"][0]["interrupted"]
