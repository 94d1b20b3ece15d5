"""pytest glue for fleet seeding: options, the ``certload_seed`` and ``certload_fleets`` fixtures.

The work is in :mod:`.seeder` (policy and caching), :mod:`.copy_writer` (SQL) and
:mod:`.api_seeder` (REST); this file only wires them to the session's ``certload_stack``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_certload.seeding.fleet import SEEDS_DIR_ENV
from pytest_certload.seeding.report import SeedReport
from pytest_certload.seeding.seeder import FleetSeeder

# name -> SeedReport of every fleet seeded this session (for summaries: ``report.to_dict()``)
SEED_REPORTS_KEY = pytest.StashKey[dict[str, SeedReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("certload-seeding", "pytest-certload fleet seeding")
    group.addoption(
        "--certload-seed-via",
        choices=("auto", "sql", "api"),
        default="auto",
        help="how fleets are seeded: sql (COPY, needs the stack's DSN), api (REST, slow), "
        "auto (sql when a DSN is known). Default auto.",
    )
    group.addoption(
        "--certload-seeds-dir",
        default=None,
        help="directory of fleet definitions (*.toml); default $CERTLOAD_SEEDS_DIR, else the ini key "
        "certload_seeds, else <rootdir>/seeds",
    )
    parser.addini(
        "certload_seeds",
        "directory of fleet definitions (*.toml), relative to the ini file's directory (default: seeds)",
        default=None,
    )


def seeds_directory(config: pytest.Config) -> Path:
    """The suite's fleet definitions: --certload-seeds-dir, $CERTLOAD_SEEDS_DIR, ini certload_seeds,
    else ``<rootdir>/seeds`` -- the suite's own folder, wherever the plugin is installed from."""
    option = config.getoption("certload_seeds_dir")
    if option:
        return Path(option)
    env = os.environ.get(SEEDS_DIR_ENV)
    if env:
        return Path(env)
    ini = config.getini("certload_seeds")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / ini
    return config.rootpath / "seeds"


@pytest.fixture(scope="session")
def certload_seeds_dir(pytestconfig: pytest.Config) -> Path:
    """Where this run reads fleet definitions from (see ``seeds_directory``)."""
    return seeds_directory(pytestconfig)


@pytest.fixture(scope="session")
def certload_seed(request: pytest.FixtureRequest, certload_stack, certload_seeds_dir: Path) -> FleetSeeder:
    """Callable ``seed(fleet_name) -> SeedReport``, one per session (each fleet seeds once)."""
    config = request.config
    seeder = FleetSeeder(
        certload_stack,
        allow_external=bool(config.getoption("certload_allow_external_load", default=False)),
        via=config.getoption("certload_seed_via"),
        seeds_dir=certload_seeds_dir,
    )
    config.stash[SEED_REPORTS_KEY] = seeder.reports
    return seeder


@pytest.fixture
def certload_fleets(request: pytest.FixtureRequest, certload_seed: FleetSeeder) -> dict[str, SeedReport]:
    """Seeds the fleets named by ``@pytest.mark.certload(fleets=[...])``; returns name -> SeedReport."""
    marker = request.node.get_closest_marker("certload")
    fleets = marker.kwargs.get("fleets", ()) if marker else ()
    if isinstance(fleets, str) or not all(isinstance(name, str) for name in fleets):
        raise pytest.UsageError(f"{request.node.nodeid}: certload(fleets=...) takes a list of fleet names")
    return {name: certload_seed(name) for name in fleets}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    reports = config.stash.get(SEED_REPORTS_KEY, {})
    if not reports:
        return
    terminalreporter.section("certload seeding")
    for r in reports.values():
        span = f" ids {r.id_range[0]} .. {r.id_range[1]}" if r.id_range else ""
        terminalreporter.write_line(
            f"{r.fleet}: {r.present}/{r.expected} rows in {r.table} ({r.inserted} new) "
            f"via {r.method} in {r.seconds:.2f} s{span}"
        )
