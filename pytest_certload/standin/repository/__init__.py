"""The stand-in's SQL, one module per resource, like certctl's ``internal/repository/postgres``.

Handlers never hold SQL text: they open a connection (and decide which failures become which
response), then call the functions named here. Each function runs the statements certctl's
repository runs for the same call, in the same order, so the database sees comparable load and
the same constraint errors. Rows certctl's Go scanner would refuse raise :class:`ScanError`.
"""

from __future__ import annotations

import itertools
import time

import psycopg

_ids = itertools.count(1)


class ScanError(RuntimeError):
    """A row certctl's Go scanner would refuse (NULL in a string column, non-string tag)."""


def generate_id(prefix: str) -> str:
    """certctl's generateID: ``<prefix>-<unix nanos>-<process counter>``."""
    return f"{prefix}-{time.time_ns()}-{next(_ids)}"


async def ping(conn: psycopg.AsyncConnection) -> None:
    """certctl's readiness check: one round trip."""
    await conn.execute("SELECT 1")
