"""The stand-in's HTTP application: certctl's middleware order and route table, and nothing else.

Middleware order follows certctl's ``buildFinalHandler``: ``/health`` and ``/ready`` take the
no-auth chain (request id, security headers, their own rate limiter); everything else takes the
full chain (request id, security headers, API rate limiter, Bearer auth, router). So an unknown
path without a token is a 401, with a token a 404, exactly as on certctl without a dashboard.

Where things are: one module per resource for the handlers (:mod:`.certificates`, :mod:`.agents`,
:mod:`.acme`, :mod:`.health`), their SQL in :mod:`.repository`, response shapes in
:mod:`.responses`, the checks before routing in :mod:`.auth`, ServeMux's matching in :mod:`.routing`.
A new route is one line in :meth:`Standin.__init__` plus a name in :data:`.config.ROUTES`.

After auth, certctl's per-request database work is reproduced (:mod:`.audit`): one audit row per
request (hash-chain trigger included) and the RBAC permission query before each gated handler.
Not reproduced (stand-in limits, on purpose): the scheduler, ETag on routes other than the
certificate list, every route the load scenarios do not use.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from pytest_certload.standin.acme import AcmeHandlers
from pytest_certload.standin.agents import AgentHandlers
from pytest_certload.standin.audit import AuditTrail, PermissionGate
from pytest_certload.standin.auth import BearerAuth, ClientRateLimit
from pytest_certload.standin.certificates import CertificateHandlers
from pytest_certload.standin.config import StandinConfig
from pytest_certload.standin.health import HealthHandlers, head_refused
from pytest_certload.standin.issuers import IssuerHandlers, LocalIssuer
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.responses import get_only, handler_error, http_error
from pytest_certload.standin.routing import Route, Router, path_segments, redirect_to_clean_path

log = logging.getLogger("certload.standin")

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer-when-downgrade",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Permissions-Policy": "accelerometer=(), camera=(), geolocation=(), microphone=(), payment=(), usb=(), "
    "interest-cohort=()",
}
SERVER_LABEL = "certctl-stand-in (pytest-certload test double)"
NO_AUTH_PATHS = ("/health", "/ready")

Check = Callable[[web.Request], web.Response | None]


def answer_preflight(request: web.Request) -> web.Response | None:
    """certctl's CORS middleware answers preflights before auth."""
    return web.Response(status=204) if request.method == "OPTIONS" else None


class Standin:
    """The middleware chains and the route table; one instance per process."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.db = PoolSlot()  # opened and closed by build_app's pool_lifecycle
        # certctl's middleware in front of each router, in order; a check answers or passes (None).
        self.noauth_chain: tuple[Check, ...] = (ClientRateLimit(config).refuse,)
        self.api_chain: tuple[Check, ...] = (
            ClientRateLimit(config).refuse,
            answer_preflight,
            BearerAuth(config.token).refuse,
        )
        # after auth: the audit row (around the router) and the RBAC gate (before gated handlers)
        self.audit = AuditTrail(self.db, config.max_body_size)
        self.permissions = PermissionGate(self.db)
        health = HealthHandlers(self.db)
        certs = CertificateHandlers(self.db, config.max_body_size)
        local_issuer = (
            LocalIssuer()
        )  # iss-local: ACME finalize and agent CSRs sign with it, PUT /api/v1/issuers configures it
        agents = AgentHandlers(self.db, config.max_body_size, local_issuer)
        acme = AcmeHandlers(self.db, local_issuer)
        issuers = IssuerHandlers(self.db, local_issuer, config.max_body_size)
        # certctl's route registrations; the second field names the route for --latency/--error-rate.
        self.noauth_routes = Router(
            Route("GET /health", "health", health.health, head=head_refused),
            Route("GET /ready", "ready", health.ready, head=head_refused),
        )
        self.api_routes = Router(
            Route("GET /api/v1/certificates", "list_certificates", certs.list_certificates, head=get_only),
            Route("POST /api/v1/certificates", "create_certificate", certs.create_certificate),
            Route("GET /api/v1/certificates/{id}", "get_certificate", certs.get_certificate, head=get_only),
            Route("POST /api/v1/certificates/bulk-renew", "bulk_renew", certs.bulk_renew),
            Route("POST /api/v1/agents/{id}/heartbeat", "heartbeat", agents.heartbeat),
            Route("GET /api/v1/agents/{id}/work", "work", agents.work, head=get_only),
            Route("POST /api/v1/agents/{id}/csr", "agent_csr", agents.csr),
            Route(
                "GET /api/v1/agents/{id}/certificates/{cert_id}", "agent_pickup", agents.pickup, head=get_only
            ),
            Route("POST /api/v1/agents/{id}/jobs/{job_id}/status", "agent_job_status", agents.job_status),
            Route("POST /api/v1/jobs/{id}/verify", "verify_deployment", agents.verify),
            Route("PUT /api/v1/issuers/{id}", "update_issuer", issuers.update),
            Route("GET /acme/profile/{id}/directory", "acme_directory", acme.directory),
            Route("GET /acme/profile/{id}/new-nonce", "acme_new_nonce", acme.new_nonce),
            Route("POST /acme/profile/{id}/new-account", "acme_new_account", acme.new_account),
            Route("POST /acme/profile/{id}/new-order", "acme_new_order", acme.new_order),
            Route("POST /acme/profile/{id}/order/{ord_id}", "acme_order", acme.order),
            Route("POST /acme/profile/{id}/order/{ord_id}/finalize", "acme_finalize", acme.finalize),
            Route("POST /acme/profile/{id}/authz/{authz_id}", "acme_authz", acme.authz),
            Route("POST /acme/profile/{id}/cert/{cert_id}", "acme_cert", acme.cert),
            Route("GET /acme/profile/{id}/renewal-info/{cert_id}", "acme_renewal_info", acme.renewal_info),
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        try:
            response = await self._dispatch(request, request_id)
        except Exception:  # certctl's Recovery middleware: log, answer 500, keep serving
            log.exception(
                "unhandled error on %s %s (request_id %s)", request.method, request.path, request_id
            )
            response = http_error(500, '{"error":"Internal Server Error"}')
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Request-ID"] = request_id
        response.headers["Server"] = SERVER_LABEL  # certctl sends none; the double says what it is
        return response

    async def _dispatch(self, request: web.Request, rid: str) -> web.StreamResponse:
        if request.path in NO_AUTH_PATHS:
            chain, router = self.noauth_chain, self.noauth_routes
        else:
            chain, router = self.api_chain, self.api_routes
        for check in chain:
            answer = check(request)
            if answer is not None:  # aiohttp responses are mappings, falsy when empty: never `or` them
                return answer
        return await self.audit.around(request, lambda: self._route(router, request, rid))

    async def _route(self, router: Router, request: web.Request, rid: str) -> web.StreamResponse:
        redirect = redirect_to_clean_path(request)  # ServeMux's clean-path redirect, behind the audit
        if redirect is not None:
            return redirect
        parts = path_segments(request)
        request["path_values"] = parts
        route = router.resolve(request.method, parts)
        if isinstance(route, web.Response):
            return route
        refusal = await self.permissions.refuse(route.name)
        if refusal is not None:
            return refusal
        delay = self.config.latency_for(route.name)
        if delay > 0:
            await asyncio.sleep(delay / 1000.0)  # injected latency, the point of the option
        rate = self.config.error_rate_for(route.name)
        if rate > 0 and random.random() < rate:
            return handler_error(500, "injected failure (certctl stand-in --error-rate)", rid)
        return await route.handler(request, rid)


def build_app(config: StandinConfig) -> web.Application:
    """The aiohttp application: one catch-all route so 404/405 look like Go's ServeMux."""
    standin = Standin(config)
    # Bodies are bounded by request_body.read_limited (certctl's MaxBytesReader), not by aiohttp.
    app = web.Application(client_max_size=1 << 40)

    async def pool_lifecycle(_app: web.Application) -> AsyncIterator[None]:
        standin.db.open(config.dsn, max_size=config.pool_size)
        yield
        await standin.audit.flush()
        await standin.db.close()

    app.cleanup_ctx.append(pool_lifecycle)
    app.router.add_route("*", "/{tail:.*}", standin.handle)
    app["standin"] = standin
    return app
