"""``/health`` and ``/ready``: the probes load balancers and orchestrators poll.

They sit outside authentication and the API rate limiter (app.py routes them through certctl's
no-auth chain), so their answers stay cheap and distinguishable: ``/health`` never touches the
database, ``/ready`` pings it with a 2 s bound and says 503 when it cannot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg
from aiohttp import web

from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import ping
from pytest_certload.standin.responses import http_error, json_response

READY_TIMEOUT_S = 2.0


def head_refused() -> web.Response:
    """ServeMux routes HEAD to the GET handler; certctl's health handlers refuse it with http.Error."""
    return http_error(405, "Method not allowed")


@dataclass(frozen=True)
class HealthHandlers:
    """certctl's HealthHandler."""

    db: PoolSlot

    async def health(self, request: web.Request, rid: str) -> web.StreamResponse:
        return json_response(200, {"status": "healthy"})

    async def ready(self, request: web.Request, rid: str) -> web.StreamResponse:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S), self.db.connection() as conn:
                await ping(conn)
        except (psycopg.Error, OSError, TimeoutError):
            return json_response(503, {"error": "database ping failed", "status": "db_unavailable"})
        return json_response(200, {"db": "reachable", "status": "ready"})
