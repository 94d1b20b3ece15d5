"""Installed from a wheel (not editable), the plugin finds the suite's ``seeds/``, not its own checkout's.

The wheel is built from this checkout and unpacked into a folder put first on PYTHONPATH, so the
inner pytest imports the plugin from there (asserted) and the suite's rootdir has its own seeds/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FLEET = """
[fleet]
table = "managed_certificates"
count = 3
id_prefix = "cert-suite-only-"

[columns]
id = "cert-suite-only-{i:03d}"
"""

SUITE_TEST = """
from pathlib import Path

import pytest_certload
from pytest_certload.seeding.fleet import load_fleet


def test_seeds_come_from_the_suite(certload_seeds_dir, pytestconfig):
    installed = Path(pytest_certload.__file__).resolve()
    assert "site" in str(installed.parent.parent) and "{root}" not in str(installed), installed
    assert certload_seeds_dir == pytestconfig.rootpath / "seeds"
    assert load_fleet("suite_only", certload_seeds_dir).name == "suite_only"
"""


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",  # pip builds in an isolated env with setuptools from PyPI, as a user's pip would
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"building the wheel failed: {build.stderr[-2000:]}"
    (wheel,) = out.glob("pytest_certload-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    assert not (site / "seeds").exists(), "the wheel must not carry the repository's seeds/"
    return site


def run_suite(suite: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CERTLOAD_SEEDS_DIR",) and not k.startswith("PYTEST_")
    }
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_wheel_install_finds_the_suites_seeds(wheel_site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "seeds").mkdir(parents=True)
    (suite / "seeds" / "suite_only.toml").write_text(FLEET)
    (suite / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (suite / "test_suite.py").write_text(SUITE_TEST.replace("{root}", str(ROOT)))
    result = run_suite(suite, wheel_site, "-k", "seeds_come_from_the_suite")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_ini_key_certload_seeds_names_another_folder(wheel_site: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    (suite / "fleets").mkdir(parents=True)
    (suite / "fleets" / "suite_only.toml").write_text(FLEET)
    (suite / "pyproject.toml").write_text('[tool.pytest.ini_options]\ncertload_seeds = "fleets"\n')
    (suite / "test_suite.py").write_text(
        "from pytest_certload.seeding.fleet import load_fleet\n\n"
        "def test_it(certload_seeds_dir, pytestconfig):\n"
        "    assert certload_seeds_dir == pytestconfig.rootpath / 'fleets'\n"
        "    assert load_fleet('suite_only', certload_seeds_dir).name == 'suite_only'\n"
    )
    result = run_suite(suite, wheel_site)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
