"""An RFC 8555 ACME client for the engine: JWS-signed requests, Replay-Nonces, problem documents.

Every request goes through ``ctx.request`` (so timing, tags and thresholds stay the engine's job);
the same code runs outside a phase through :class:`SetupContext` (httpx), e.g. to create accounts
before the timed part starts.

JWS (RFC 8555 §6.2): flattened JSON serialization signed with ``joserfc`` (ES256 by default, RS256
selectable), protected header ``alg``, ``nonce``, ``url`` and ``jwk`` (new-account) or ``kid``
(everything after); ``Content-Type: application/jose+json``; POST-as-GET sends an empty payload.
joserfc rather than josepy: both are maintained JOSE libraries, but a josepy signature costs ~80 us
against joserfc's ~36 us (ES256, this machine class, benchmarks/bench_acme.py), and an issuance
signs five requests -- josepy alone would spend most of the 0.5 ms per-certificate budget.

Nonces: every response's ``Replay-Nonce`` goes back into a shared pool; a request takes one from
the pool or, when it is empty, from ``HEAD new-nonce`` (step ``new_nonce``, counter
``acme_nonce_fetches``). certctl sends no Replay-Nonce on an error (its errors.go WriteProblem), so
every failed request costs a new-nonce later. A ``badNonce`` answer is retried once with a fresh
nonce and counted in ``acme_bad_nonce{step}``; a second one fails the request like any problem.

A failed step raises :class:`AcmeError` after counting ``acme_errors{step,type,status}``: the
iteration ends (the engine counts ``iteration_errors{error=AcmeError}``); nothing is retried around
a server error.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import Any, Protocol

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from pytest_certload.scenarios.common import auth_headers
from pytest_certload.stack.model import Stack

JOSE_CT = "application/jose+json"
PROBLEM_CT = "application/problem+json"
ERROR_PREFIX = "urn:ietf:params:acme:error:"
ALGORITHMS = ("ES256", "RS256")
#: joserfc's registry with RFC 8555's two extra protected-header parameters
REGISTRY = jws.JWSRegistry(
    header_registry={"nonce": HeaderParameter("nonce", "str"), "url": HeaderParameter("url", "str")},
    algorithms=list(ALGORITHMS),
)
REGISTRY.max_header_length = 4096  # joserfc's default 512 is shorter than a new-account RSA jwk header


class AccountKey:
    """An ACME account key: ES256 (P-256, the default) or RS256 (RSA-2048)."""

    __slots__ = ("alg", "jose_key", "public_jwk", "thumbprint")

    def __init__(self, alg: str = "ES256") -> None:
        if alg not in ALGORITHMS:
            raise ValueError(f"account key algorithm {alg!r}: expected one of {', '.join(ALGORITHMS)}")
        self.alg = alg
        self.jose_key = ECKey.generate_key("P-256") if alg == "ES256" else RSAKey.generate_key(2048)
        self.public_jwk: dict[str, str] = self.jose_key.as_dict(private=False)
        self.thumbprint: str = self.jose_key.thumbprint()  # RFC 7638, what certctl derives account ids from

    @property
    def account_id(self) -> str:
        """certctl's id for this key's account: ``acme-acc-`` + the RFC 7638 thumbprint."""
        return "acme-acc-" + self.thumbprint


def sign(key: AccountKey, url: str, nonce: str, payload: bytes, kid: str | None) -> bytes:
    """A flattened-JSON JWS (RFC 8555 §6.2): ``kid`` when given, else the public ``jwk``."""
    protected: dict[str, Any] = {"alg": key.alg, "nonce": nonce, "url": url}
    if kid is None:
        protected["jwk"] = key.public_jwk
    else:
        protected["kid"] = kid
    signed = jws.serialize_json({"protected": protected}, payload, key.jose_key, registry=REGISTRY)
    return json.dumps(signed, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Problem:
    """An answer that is not what the step wanted: RFC 7807 fields plus what the headers said."""

    status: int
    type: str  # the ACME error name ("badNonce", "rateLimited", ...), "" when no problem document
    detail: str
    retry_after: str | None
    has_nonce: bool

    @classmethod
    def of(cls, resp: Any) -> Problem:
        kind, detail = "", ""
        if PROBLEM_CT in resp.headers.get("content-type", ""):
            try:
                doc = json.loads(resp.body)
                kind = str(doc.get("type", "")).removeprefix(ERROR_PREFIX)
                detail = str(doc.get("detail", ""))
            except (ValueError, AttributeError):
                kind = "unparseable"
        elif resp.status == 0:
            kind, detail = "connection", getattr(resp, "error", "")
        return cls(resp.status, kind, detail, resp.headers.get("retry-after"), "replay-nonce" in resp.headers)

    def describe(self) -> str:
        what = self.type or "no problem document"
        return f"{self.status} {what}" + (f" ({self.detail})" if self.detail else "")


class AcmeError(Exception):
    """A step failed; ``step`` and ``problem`` say where and how (the iteration ends)."""

    def __init__(self, step: str, problem: Problem, note: str = "") -> None:
        self.step = step
        self.problem = problem
        super().__init__(f"{step}: {note or problem.describe()}")


class Context(Protocol):
    """What the client needs of an iteration context (the engine's or :class:`SetupContext`)."""

    async def request(self, method: str, url: str, **kwargs: Any) -> Any: ...
    def trend(self, name: str, value_ns: int, tags: dict[str, str] | None = None) -> None: ...
    def counter(self, name: str, n: float = 1, tags: dict[str, str] | None = None) -> None: ...


@dataclass
class Account:
    key: AccountKey
    kid: str  # the account URL certctl returned in Location


@dataclass
class Order:
    url: str
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))


class NoncePool:
    """Replay-Nonces collected from responses, handed out once each (newest first)."""

    def __init__(self) -> None:
        self._nonces: deque[str] = deque()

    def take(self) -> str | None:
        return self._nonces.pop() if self._nonces else None

    def keep(self, headers: dict[str, str]) -> None:
        nonce = headers.get("replay-nonce")
        if nonce:
            self._nonces.append(nonce)

    def __len__(self) -> int:
        return len(self._nonces)


def created(status: int) -> bool:
    return status in (200, 201)


class AcmeClient:
    """One profile's ACME endpoints; stateless apart from the nonce pool (accounts are passed in).

    ``expected`` decides what counts in ``http_req_failed`` (default: anything but 2xx); the
    rate-limit scenario passes one that accepts its 429s.
    """

    def __init__(
        self,
        directory: dict[str, str],
        headers: dict[str, str],
        *,
        expected: Callable[[int], bool] | None = None,
        poll_timeout_s: float = 30.0,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.directory = directory
        self.get_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        self.post_headers = {**self.get_headers, "Content-Type": JOSE_CT}
        self.nonces = NoncePool()
        self.expected = expected
        self.poll_timeout_s = poll_timeout_s
        self.poll_interval_s = poll_interval_s

    # -- the transport: nonce, JWS, problem accounting ---------------------------------------
    async def nonce(self, ctx: Context) -> str:
        nonce = self.nonces.take()
        if nonce is not None:
            return nonce
        ctx.counter("acme_nonce_fetches")
        resp = await ctx.request(
            "HEAD", self.directory["newNonce"], headers=self.get_headers, tags={"step": "new_nonce"}
        )
        nonce = resp.headers.get("replay-nonce")
        if resp.status != 200 or not nonce:
            raise self.fail(ctx, "new_nonce", Problem.of(resp), "no Replay-Nonce from new-nonce")
        return nonce

    async def post(
        self, ctx: Context, step: str, url: str, payload: Any, key: AccountKey, kid: str | None
    ) -> Any:
        """POST a JWS (``payload`` None: POST-as-GET); a badNonce is retried once and counted."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        for attempt in (1, 2):
            signed = sign(key, url, await self.nonce(ctx), body, kid)
            resp = await ctx.request(
                "POST",
                url,
                headers=self.post_headers,
                body=signed,
                tags={"step": step},
                expected=self.expected,
            )
            self.nonces.keep(resp.headers)
            if resp.status == 400 and attempt == 1 and Problem.of(resp).type == "badNonce":
                ctx.counter("acme_bad_nonce", tags={"step": step})
                continue
            return resp
        return resp

    def fail(self, ctx: Context, step: str, problem: Problem, note: str = "") -> AcmeError:
        """Count the failure by step, problem type and status; the caller raises what it returns."""
        tags = {"step": step, "type": problem.type or "none", "status": str(problem.status)}
        ctx.counter("acme_errors", tags=tags)
        if problem.status >= 400 and not problem.has_nonce:
            ctx.counter("acme_error_without_nonce")
        return AcmeError(step, problem, note)

    def _json(self, ctx: Context, step: str, resp: Any) -> dict[str, Any]:
        try:
            doc = json.loads(resp.body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise self.fail(ctx, step, Problem.of(resp), "answer is not a JSON object")
        return doc

    # -- RFC 8555 resources ------------------------------------------------------------------
    async def new_account(self, ctx: Context, key: AccountKey) -> Account:
        payload = {"termsOfServiceAgreed": True}
        resp = await self.post(ctx, "new_account", self.directory["newAccount"], payload, key, None)
        kid = resp.headers.get("location")
        if not created(resp.status) or not kid:
            raise self.fail(ctx, "new_account", Problem.of(resp))
        return Account(key, kid)

    async def new_order(
        self, ctx: Context, account: Account, names: list[str], replaces: str | None = None
    ) -> Order:
        payload: dict[str, Any] = {"identifiers": [{"type": "dns", "value": n} for n in names]}
        if replaces:
            payload["replaces"] = replaces  # RFC 9773 §5; certctl's NewOrderRequest has no such field
        resp = await self.post(
            ctx, "new_order", self.directory["newOrder"], payload, account.key, account.kid
        )
        if resp.status != 201 or "location" not in resp.headers:
            raise self.fail(ctx, "new_order", Problem.of(resp))
        return Order(resp.headers["location"], self._json(ctx, "new_order", resp))

    async def authorization(self, ctx: Context, account: Account, url: str) -> dict[str, Any]:
        resp = await self.post(ctx, "authz", url, None, account.key, account.kid)
        if resp.status != 200:
            raise self.fail(ctx, "authz", Problem.of(resp))
        return self._json(ctx, "authz", resp)

    async def finalize(self, ctx: Context, account: Account, order: Order, csr_b64: str) -> Order:
        resp = await self.post(
            ctx, "finalize", order.body["finalize"], {"csr": csr_b64}, account.key, account.kid
        )
        if resp.status != 200:
            raise self.fail(ctx, "finalize", Problem.of(resp))
        return Order(order.url, self._json(ctx, "finalize", resp))

    async def poll_order(self, ctx: Context, account: Account, order: Order) -> Order:
        """POST-as-GET the order until it is no longer pending/processing, honouring Retry-After.

        Always asks at least once (the finalize answer is confirmed, as certbot does).
        """
        deadline = monotonic_ns() + int(self.poll_timeout_s * 1e9)
        while True:
            resp = await self.post(ctx, "order_poll", order.url, None, account.key, account.kid)
            if resp.status != 200:
                raise self.fail(ctx, "order_poll", Problem.of(resp))
            order = Order(order.url, self._json(ctx, "order_poll", resp))
            if order.status not in ("pending", "processing"):
                return order
            wait = retry_after_seconds(resp.headers.get("retry-after"), self.poll_interval_s)
            if monotonic_ns() + int(wait * 1e9) > deadline:
                raise self.fail(
                    ctx, "order_poll", Problem(200, "timeout", f"order still {order.status}", None, True)
                )
            ctx.counter("acme_order_poll_waits")
            await ctx.sleep(wait)

    async def certificate(self, ctx: Context, account: Account, url: str) -> bytes:
        resp = await self.post(ctx, "cert_download", url, None, account.key, account.kid)
        if resp.status != 200:
            raise self.fail(ctx, "cert_download", Problem.of(resp))
        return resp.body

    async def renewal_info(self, ctx: Context, cert_id: str) -> Any:
        """GET renewal-info/<CertID> (RFC 9773 §4.1): unauthenticated in ACME terms, no JWS."""
        url = self.directory["renewalInfo"].rstrip("/") + "/" + cert_id
        return await ctx.request("GET", url, headers=self.get_headers, tags={"step": "renewal_info"})


def retry_after_seconds(value: str | None, default: float) -> float:
    """Retry-After as delta-seconds (the form ACME servers send); ``default`` when absent or a date."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return default


def client_for(stack: Stack, directory: dict[str, str], **kwargs: Any) -> AcmeClient:
    """A client carrying the stack's admin key (certctl puts /acme/* behind Bearer auth)."""
    return AcmeClient(directory, auth_headers(stack), **kwargs)


@dataclass
class StepClock:
    """Per-step wall time inside one iteration, starting at the iteration's intended start.

    The first step is measured from when the iteration was due (coordinated-omission corrected,
    as the engine measures its first request); each later step from the end of the previous one.
    """

    ctx: Any
    start_ns: int = 0
    mark_ns: int = field(default=0)

    def __post_init__(self) -> None:
        self.start_ns = self.mark_ns = min(self.ctx.intended_start_ns or monotonic_ns(), monotonic_ns())

    def lap(self, trend: str) -> int:
        now = monotonic_ns()
        elapsed = now - self.mark_ns
        self.ctx.trend(trend, elapsed)
        self.mark_ns = now
        return elapsed

    def skip(self) -> None:
        """Leave the time since the last lap out of the next step (client-side work)."""
        self.mark_ns = monotonic_ns()

    def total(self) -> int:
        return monotonic_ns() - self.start_ns


class _SetupResponse:
    __slots__ = ("body", "duration_ns", "error", "headers", "status")

    def __init__(
        self, status: int, headers: dict[str, str], body: bytes, duration_ns: int, error: str
    ) -> None:
        self.status, self.headers, self.body, self.duration_ns, self.error = (
            status,
            headers,
            body,
            duration_ns,
            error,
        )


class SetupContext:
    """The client's view of an iteration, outside a phase: httpx, metrics kept in a dict.

    For set-up (accounts before the phase, registering things) and the contract suite; never used
    for timed load (httpx's pool costs milliseconds per request, see performance notes).
    """

    def __init__(self, client: Any) -> None:
        self.client = client  # an httpx.AsyncClient
        self.intended_start_ns = 0
        self.metrics: dict[str, float] = {}

    async def request(self, method: str, url: str, *, headers=None, body=None, tags=None, expected=None):
        import httpx

        start = monotonic_ns()
        try:
            r = await self.client.request(method, url, headers=headers, content=body)
        except httpx.HTTPError as exc:
            return _SetupResponse(0, {}, b"", monotonic_ns() - start, f"{type(exc).__name__}: {exc}")
        headers_ = {k.lower(): v for k, v in r.headers.items()}
        return _SetupResponse(r.status_code, headers_, r.content, monotonic_ns() - start, "")

    def trend(self, name: str, value_ns: int, tags: dict[str, str] | None = None) -> None:
        self.metrics[name + "_last_ns"] = value_ns

    def counter(self, name: str, n: float = 1, tags: dict[str, str] | None = None) -> None:
        key = name + ("{" + ",".join(f"{k}:{v}" for k, v in sorted(tags.items())) + "}" if tags else "")
        self.metrics[key] = self.metrics.get(key, 0) + n

    def rate(self, name: str, hit: bool, tags: dict[str, str] | None = None) -> None:
        self.counter(name + ("_hits" if hit else "_misses"))

    def check(self, name: str, ok: object) -> bool:
        return bool(ok)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)
