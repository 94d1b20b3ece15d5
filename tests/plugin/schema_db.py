"""Fresh PostgreSQL databases for the seeding tests (test_seeding_*.py), and what they ask of them.

Each database is copied from a template holding either the stand-in's schema (always; what CI
runs) or certctl's real migrations + demo seed (when CERTLOAD_CERTCTL_MIGRATIONS points at certctl's
migrations directory). The ``templates`` and ``dsn`` fixtures built on this live in conftest.py.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from pytest_certload.seeding.databases import MIGRATIONS_ENV
from pytest_certload.stack.model import Secret, Stack

STANDIN_SCHEMA = pytest.param("standin", id="standin-schema")
SCHEMA_VARIANTS = [
    STANDIN_SCHEMA,
    pytest.param(
        "certctl",
        id="certctl-migrations",
        marks=pytest.mark.skipif(
            not os.environ.get(MIGRATIONS_ENV),
            reason=f"set {MIGRATIONS_ENV} to certctl's migrations directory",
        ),
    ),
]


def scalar(conn: psycopg.Connection, query: str, *params: object):
    return conn.execute(query, params or None).fetchone()[0]


def external_stack(dsn: str, owned: bool) -> Stack:
    """A stack description with nothing behind its URL: seeding needs only its DSN and ownership."""
    return Stack(
        kind="external",
        certctl_url="https://127.0.0.1:1",
        token=Secret("t"),
        ca_bundle=None,
        server="unknown",
        owned=owned,
        dsn=Secret(dsn),
    )
