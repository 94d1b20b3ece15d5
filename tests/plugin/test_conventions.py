"""pytest conventions a careful user expects of an installed plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )


def test_one_pytest11_entry_point() -> None:
    """The stack and seeding fixtures come with the plugin (its pytest_plugins), not as extra entries."""
    ours = [e for e in entry_points(group="pytest11") if e.value.startswith("pytest_certload")]
    assert [e.value for e in ours] == ["pytest_certload.plugin"]


def test_stack_and_seeding_fixtures_come_with_the_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures")
    out = result.stdout.str()
    assert "certload -- " in out and "certload_fleets" in out and "certload_stack " in out


def test_the_plugin_registers_only_its_own_marker(pytester: pytest.Pytester) -> None:
    """``api``/``scale``/... are this repository's suite markers (its conftest.py), not the plugin's."""
    result = pytester.runpytest_subprocess("--markers")
    out = result.stdout.str()
    assert "@pytest.mark.certload(" in out
    for suite_marker in ("api", "connector", "scale", "acme"):
        assert f"@pytest.mark.{suite_marker}:" not in out


def test_this_suite_registers_its_markers() -> None:
    root = Path(__file__).resolve().parents[2]
    result = run_pytest(root, "--markers")
    for suite_marker in ("api", "connector", "scale", "acme"):
        assert f"@pytest.mark.{suite_marker}:" in result.stdout


@pytest.fixture
def suite_and_binary(tmp_path: Path) -> tuple[Path, Path]:
    suite = tmp_path / "suite"
    (suite / "tests").mkdir(parents=True)
    (suite / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    (suite / "tests" / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    binary = tmp_path / "elsewhere" / "bin" / "certctl-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "elsewhere" / "migrations").mkdir()
    (tmp_path / "elsewhere" / "migrations" / "000001_init.up.sql").write_text("select 1;\n")
    return suite, binary


def test_space_separated_path_option_warns_that_the_rootdir_moved(suite_and_binary) -> None:
    suite, binary = suite_and_binary
    migrations = f"--certctl-migrations={binary.parent.parent / 'migrations'}"
    moved = run_pytest(suite, "--certctl-bin", str(binary), migrations, "--certload-list")
    assert "pytest's rootdir is" in moved.stdout + moved.stderr
    assert "Write '--option=VALUE'" in moved.stdout + moved.stderr


def test_equals_form_keeps_the_rootdir_and_does_not_warn(suite_and_binary) -> None:
    suite, binary = suite_and_binary
    migrations = f"--certctl-migrations={binary.parent.parent / 'migrations'}"
    kept = run_pytest(suite, f"--certctl-bin={binary}", migrations, "--certload-list")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"rootdir: {suite}" in kept.stdout
    assert "pytest's rootdir is" not in kept.stdout + kept.stderr


def test_no_signal_handler_in_a_run_without_load_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import signal

        def test_sigterm_is_pythons_default():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_run_with_a_load_test_turns_sigterm_into_an_orderly_stop(pytester: pytest.Pytester) -> None:
    """The other half: with a load test selected, SIGTERM unwinds like Ctrl-C (stack stopped, summary)."""
    pytester.makepyfile(
        test_load="""
        import signal

        def test_uses_certload(certload):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
