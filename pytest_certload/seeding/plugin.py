"""pytest glue for fleet seeding: options, the ``certload_seed`` and ``certload_fleets`` fixtures.

The work is in :mod:`.seeder` (policy and caching), :mod:`.copy_writer` (SQL) and
:mod:`.api_seeder` (REST); this file only wires them to the session's ``certload_stack``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
        help="directory of fleet definitions (*.toml); default $CERTLOAD_SEEDS_DIR or the repo's seeds/",
    )


@pytest.fixture(scope="session")
def certload_seed(request: pytest.FixtureRequest, certload_stack) -> FleetSeeder:
    """Callable ``seed(fleet_name) -> SeedReport``, one per session (each fleet seeds once)."""
    config = request.config
    seeds_dir = config.getoption("certload_seeds_dir")
    seeder = FleetSeeder(
        certload_stack,
        allow_external=bool(config.getoption("certload_allow_external_load", default=False)),
        via=config.getoption("certload_seed_via"),
        seeds_dir=Path(seeds_dir) if seeds_dir else None,
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
