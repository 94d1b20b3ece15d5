"""Split mode leans on a few pytest-xdist internals: fail loudly, by name, the day they move."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from pytest_certload.xdist import internals

ROOT = Path(__file__).resolve().parents[2]


def test_installed_xdist_has_every_internal_split_mode_uses() -> None:
    assert internals.missing() == [], (
        f"pytest-xdist {version('pytest-xdist')} moved internals split mode relies on: "
        f"{internals.missing()} (see pytest_certload/xdist/internals.py)"
    )


def test_installed_xdist_is_a_tested_version() -> None:
    installed = version("pytest-xdist")
    assert installed.rsplit(".", 1)[0] in internals.TESTED, (
        f"pytest-xdist {installed} is not among the versions split mode was tested with {internals.TESTED}"
    )


def test_pyproject_pins_xdist_to_the_tested_versions() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (xdist,) = [d for d in deps if d.startswith("pytest-xdist")]
    assert "<" in xdist, f"pytest-xdist needs an upper bound (split mode uses its internals): {xdist}"
    for tested in internals.TESTED:
        assert f">={tested}" in xdist and f"<{tested[:-1]}{int(tested[-1]) + 1}" in xdist, xdist


def test_check_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error a user sees with an untested xdist: what moved and what to install."""
    monkeypatch.setattr(internals, "DSESSION_HANDLERS", (*internals.DSESSION_HANDLERS, "worker_gone"))
    with pytest.raises(
        RuntimeError, match=r"lacks DSession\.worker_gone.*pip install 'pytest-xdist>=3\.8,<3\.9'"
    ):
        internals.check()
