"""Hypothesis settings for the property-based tests (test_properties_*.py); the seeding tests' databases.

The default profile, "ci", is what scripts/test.sh runs: a bounded example count, derandomized so a
run is reproducible, no deadline (the machine is shared and noisy) and no example database.
``HYPOTHESIS_PROFILE=explore`` searches harder with a random seed (a failure prints the
``@reproduce_failure`` blob to paste into the test). Hypothesis's own caches (unicode tables,
constants) go to the temp directory, not to a ``.hypothesis/`` in the checkout, unless
HYPOTHESIS_STORAGE_DIRECTORY says where.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from schema_db import SCHEMA_VARIANTS  # this directory is on sys.path

from pytest_certload.seeding.databases import SchemaTemplates
from pytest_certload.stack.postgres import find_pg_bin

try:
    from hypothesis import settings
    from hypothesis.configuration import set_hypothesis_home_dir
except ImportError:  # hypothesis is in the dev extra; without it only the property modules fail
    settings = None

if settings is not None:
    settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None, database=None)
    settings.register_profile("explore", max_examples=2_000, deadline=None, database=None, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "pytest-certload-hypothesis")


# -- PostgreSQL databases for the seeding tests (schema_db.py) ------------------------------------
@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaTemplates]:
    """The template databases (one PostgreSQL server per module), skipped without PostgreSQL."""
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL >= 15 binaries (apt-get install postgresql)")
    with SchemaTemplates(tmp_path_factory.mktemp("seeding-pg")) as t:
        yield t


@pytest.fixture(params=SCHEMA_VARIANTS)
def dsn(request: pytest.FixtureRequest, templates: SchemaTemplates) -> Iterator[str]:
    """A fresh database per test, with the stand-in's schema or certctl's migrations."""
    with templates.fresh(request.param) as fresh_dsn:
        yield fresh_dsn
