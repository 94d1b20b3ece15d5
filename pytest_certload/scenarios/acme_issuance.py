"""ACME issuance under load: orders, finalize, certificate download, ARI and renewal, rate limits.

Three iteration builders on one :class:`AcmeScenario` (per-VU accounts, the client, the trust
anchor):

- :meth:`AcmeScenario.issuance`: new-order for ``identifiers`` DNS names -> the authorizations are
  checked ``valid`` (trust_authenticated profile) -> finalize with a CSR for a fresh key -> the order
  is polled (Retry-After honoured) -> the certificate is downloaded (POST-as-GET) and verified.
  Trends per step: ``acme_new_account_duration`` (per-VU accounts only), ``acme_new_order_duration``,
  ``acme_authz_duration``, ``acme_finalize_duration``, ``acme_order_poll_duration``,
  ``acme_cert_download_duration``, and end to end ``acme_issuance_duration`` (new-order sent ->
  certificate downloaded; the first step of an iteration is timed from when it was due). Counters
  ``acme_certs_issued``, ``acme_errors{step,type,status}``, ``acme_bad_nonce{step}``; rates
  ``acme_cert_invalid{reason}`` (per downloaded certificate) and ``acme_order_failed`` (per
  iteration).
- :meth:`AcmeScenario.renewal`: an issuance, then RFC 9773 ``renewal-info`` for the certificate
  just issued (its real CertID: AKI + serial) expecting a ``suggestedWindow`` (rate ``acme_ari_ok``,
  trend ``acme_ari_duration``), then a renewal order carrying ``replaces`` (certctl's new-order
  payload has no such field and drops it), counted in ``acme_certs_renewed``.
- :meth:`AcmeScenario.rate_limit`: new-order + finalize on ONE account, past certctl's per-account
  limits; every 429 is classified (``acme_rate_limited{limit,type,retry_after}``).

Accounts (the user chooses): ``accounts=None`` (default) rolls accounts during the phase, each
created by the first iteration that needs it and timed as its own step (``new_account``):
iterations go round-robin over ``interleave`` (32) current accounts, each of which serves
``orders_per_account`` (25) orders before a fresh set takes over -- so no account nears certctl's
per-account limits (100 orders/hour, 5 concurrent orders) however long the phase runs.
``accounts=N`` creates N accounts before the phase (:meth:`AcmeScenario.create_accounts`, outside
the timed path); iteration ``i`` uses account ``i % N`` (size N for rate x duration / 100 orders).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pytest_certload.scenarios.acme import directory_url_for
from pytest_certload.scenarios.acme_certs import (
    CertInvalid,
    IssuerCA,
    Trust,
    ari_cert_id,
    new_csr,
    new_key,
    serial_hex40,
    verify_issued,
)
from pytest_certload.scenarios.acme_client import (
    Account,
    AccountKey,
    AcmeClient,
    AcmeError,
    Problem,
    SetupContext,
    StepClock,
    client_for,
)
from pytest_certload.scenarios.common import ACME_PROFILE, auth_headers, json_bytes
from pytest_certload.stack.model import Stack

DOMAIN = "acme.certload.test"
#: an iteration that waited for an account another iteration was creating
ACCOUNT_WAIT_TREND = "acme_account_wait_duration"
STEP_TRENDS = {
    "new_account": "acme_new_account_duration",
    "new_order": "acme_new_order_duration",
    "authz": "acme_authz_duration",
    "finalize": "acme_finalize_duration",
    "order_poll": "acme_order_poll_duration",
    "cert_download": "acme_cert_download_duration",
}
ISSUANCE_TREND = "acme_issuance_duration"
ARI_TREND = "acme_ari_duration"
RENEWAL_TREND = "acme_renewal_duration"
#: counters every phase records (0 when nothing happened), so ``count==0`` thresholds can see them
ZERO_COUNTERS = ("acme_bad_nonce", "acme_certs_issued", "acme_error_without_nonce")


@dataclass
class AcmeSetup:
    """What the scenarios need of a stack, prepared once: the directory and the trust anchor."""

    stack: Stack
    directory: dict[str, str]
    trust: Trust
    profile: str = ACME_PROFILE

    def client(self, **kwargs: Any) -> AcmeClient:
        return client_for(self.stack, self.directory, **kwargs)


def tls_context(stack: Stack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.ca_bundle) if stack.ca_bundle else None)


def prepare(stack: Stack, workdir: Path, profile: str = ACME_PROFILE) -> AcmeSetup:
    """Read the directory and set up what is ours: iss-local signs with a CA we generated.

    Only where the server reads this machine's files (a native stack the plugin started); otherwise
    the trust anchor is pinned from the first chain (:meth:`Trust.pinned`). ``workdir`` is shared by
    every process that shares the stack (pytest-xdist workers): they all register the same CA.
    """
    with httpx.Client(verify=tls_context(stack), headers=auth_headers(stack), timeout=30) as http:
        r = http.get(directory_url_for(stack, profile))
        if r.status_code != 200:
            raise RuntimeError(f"ACME directory of profile {profile}: {r.status_code} {r.text[:200]}")
        directory = r.json()
        trust = Trust.pinned()
        if stack.kind == "native" and stack.owned:
            ca = IssuerCA.load_or_create(workdir)  # one CA for every process sharing the stack
            put = http.put(
                f"{stack.certctl_url}/api/v1/issuers/{ca.issuer_body()['id']}",
                content=json_bytes(ca.issuer_body()),
                headers={"Content-Type": "application/json"},
            )
            if put.status_code != 200:
                raise RuntimeError(f"registering our CA as iss-local: {put.status_code} {put.text[:300]}")
            trust = Trust.registered(ca.cert)
    return AcmeSetup(stack, directory, trust, profile)


@dataclass
class Issued:
    account: Account
    names: list[str]
    leaf: Any  # x509.Certificate


class AcmeScenario:
    """The accounts, one client and its nonce pool, and the ids of every account made (for reports)."""

    def __init__(
        self,
        setup: AcmeSetup,
        *,
        identifiers: int = 1,
        accounts: int | None = None,
        account_alg: str = "ES256",
        check_authz: bool = True,
        orders_per_account: int = 25,
        interleave: int = 32,
        expected: Any = None,
        label: str = "iss",
    ) -> None:
        self.setup = setup
        self.client = setup.client(expected=expected)
        self.identifiers = identifiers
        self.account_alg = account_alg
        self.check_authz = check_authz
        self.pool: list[Account] = []
        self.rolling: dict[int, asyncio.Future] = {}  # rolling account index -> its creation
        self.orders_per_account = orders_per_account
        self.interleave = interleave
        self.account_ids: list[str] = []
        self.run_token = f"{label}-{secrets.token_hex(3)}"
        self._started = False
        if accounts:
            self.create_accounts(accounts)

    # -- accounts --------------------------------------------------------------------------
    def create_accounts(self, n: int) -> list[Account]:
        """Create ``n`` accounts now, outside any phase (httpx; not timed)."""

        async def make() -> list[Account]:
            async with httpx.AsyncClient(verify=tls_context(self.setup.stack), timeout=30) as http:
                ctx = SetupContext(http)
                return [await self.client.new_account(ctx, AccountKey(self.account_alg)) for _ in range(n)]

        made = asyncio.run(make())
        self.pool.extend(made)
        self.account_ids.extend(a.key.account_id for a in made)
        return made

    async def account_for(self, ctx: Any, clock: StepClock) -> Account:
        i = ctx.iteration
        if self.pool:
            return self.pool[i % len(self.pool)]
        k, m = self.interleave, self.orders_per_account
        index = (i // (k * m)) * k + i % k
        pending = self.rolling.get(index)
        if pending is not None:  # created (or being created) by an earlier iteration
            waited = not pending.done()
            account = await asyncio.shield(pending)
            if waited:  # time spent waiting for another iteration's new-account is not new-order's
                clock.lap(ACCOUNT_WAIT_TREND)
            return account
        pending = self.rolling[index] = asyncio.get_running_loop().create_future()
        key = AccountKey(self.account_alg)
        try:
            account = await self.client.new_account(ctx, key)
        except BaseException as exc:
            del self.rolling[index]  # the next iteration that needs it tries again
            if isinstance(exc, asyncio.CancelledError):
                pending.cancel()
            else:
                pending.set_exception(exc)
                pending.exception()  # retrieved: waiters get it, the loop does not log it
            raise
        pending.set_result(account)
        self.account_ids.append(key.account_id)  # only accounts certctl created
        clock.lap(STEP_TRENDS["new_account"])
        return account

    def names(self, ctx: Any) -> list[str]:
        base = f"{self.run_token}-{ctx.iteration}-{secrets.token_hex(3)}"
        return [f"{base}.{DOMAIN}"] + [f"{base}-san{i}.{DOMAIN}" for i in range(1, self.identifiers)]

    def _touch(self, ctx: Any) -> None:
        if not self._started:  # the counters exist from the first iteration on, with 0
            self._started = True
            for name in ZERO_COUNTERS:
                ctx.counter(name, 0)

    # -- one issuance ------------------------------------------------------------------------
    async def issue(
        self,
        ctx: Any,
        account: Account,
        clock: StepClock,
        replaces: str | None = None,
        names: list[str] | None = None,
    ) -> Issued:
        """One order to a verified certificate; ``replaces`` (an ARI CertID) and ``names`` for a renewal."""
        client = self.client
        names = names or self.names(ctx)
        began = clock.mark_ns
        order = await client.new_order(ctx, account, names, replaces)
        clock.lap(STEP_TRENDS["new_order"])
        if order.status != "ready":  # trust_authenticated: born ready, authorizations valid
            raise client.fail(
                ctx, "new_order", Problem(201, "orderNotReady", f"new order is {order.status}", None, True)
            )
        if self.check_authz:
            for url in order.body.get("authorizations", []):
                authz = await client.authorization(ctx, account, url)
                if authz.get("status") != "valid":
                    raise client.fail(
                        ctx, "authz", Problem(200, "authzNotValid", str(authz.get("status")), None, True)
                    )
            clock.lap(STEP_TRENDS["authz"])
        key = new_key()
        csr = new_csr(names, key)
        clock.skip()  # keygen and CSR are the client's, not the server's
        order = await client.finalize(ctx, account, order, csr)
        clock.lap(STEP_TRENDS["finalize"])
        order = await client.poll_order(ctx, account, order)
        clock.lap(STEP_TRENDS["order_poll"])
        cert_url = order.body.get("certificate")
        if order.status != "valid" or not cert_url:
            raise client.fail(
                ctx,
                "order_poll",
                Problem(200, f"order_{order.status}", json.dumps(order.body.get("error")), None, True),
            )
        pem = await client.certificate(ctx, account, cert_url)
        clock.lap(STEP_TRENDS["cert_download"])
        ctx.trend(ISSUANCE_TREND, clock.mark_ns - began)
        try:
            leaf = verify_issued(pem, self.setup.trust, names, key)
        except CertInvalid as exc:
            ctx.rate("acme_cert_invalid", True, {"reason": exc.reason})
            raise
        ctx.rate("acme_cert_invalid", False)
        ctx.counter("acme_certs_issued")
        return Issued(account, names, leaf)

    # -- iteration builders ------------------------------------------------------------------
    def issuance(self):
        async def iteration(ctx) -> None:
            self._touch(ctx)
            ok = False
            try:
                clock = StepClock(ctx)
                account = await self.account_for(ctx, clock)
                await self.issue(ctx, account, clock)
                ok = True
            finally:
                ctx.rate("acme_order_failed", not ok)

        return iteration

    def renewal(self):
        async def iteration(ctx) -> None:
            self._touch(ctx)
            ok = False
            try:
                clock = StepClock(ctx)
                account = await self.account_for(ctx, clock)
                first = await self.issue(ctx, account, clock)
                cert_id = ari_cert_id(first.leaf)
                resp = await self.client.renewal_info(ctx, cert_id)
                clock.lap(ARI_TREND)
                self._judge_ari(ctx, resp, first.leaf)
                began = clock.mark_ns
                await self.issue(ctx, account, clock, replaces=cert_id, names=first.names)
                ctx.trend(RENEWAL_TREND, clock.mark_ns - began)
                ctx.counter("acme_certs_renewed")
                ok = True
            finally:
                ctx.rate("acme_order_failed", not ok)

        return iteration

    def _judge_ari(self, ctx: Any, resp: Any, leaf: Any) -> None:
        reason = ari_problem(resp, leaf)
        tags = {"status": str(resp.status)}
        if reason:
            tags["reason"] = reason
            if resp.status == 404 and serial_hex40(leaf).startswith("0"):
                tags["reason"] = "serial_leading_zero"
        ctx.rate("acme_ari_ok", not reason, tags)

    def rate_limit(self):
        """New-order + finalize on the pool's first account; 429s are counted, not failures."""

        async def iteration(ctx) -> None:
            self._touch(ctx)
            if not self.pool:
                raise ValueError("rate_limit() drives one pooled account: build the scenario with accounts=1")
            account = self.pool[0]
            clock = StepClock(ctx)
            try:
                order = await self.client.new_order(ctx, account, self.names(ctx))
            except AcmeError as exc:
                if exc.problem.status != 429:
                    raise
                p = exc.problem
                limit = "concurrent" if "concurrent" in p.detail else "hourly"
                ctx.counter(
                    "acme_rate_limited",
                    tags={
                        "limit": limit,
                        "type": p.type or "none",
                        "retry_after": "yes" if p.retry_after else "no",
                    },
                )
                return
            clock.lap(STEP_TRENDS["new_order"])
            ctx.counter("acme_orders_accepted")
            await self.client.finalize(ctx, account, order, new_csr(order_names(order), new_key()))
            clock.lap(STEP_TRENDS["finalize"])

        return iteration


def order_names(order: Any) -> list[str]:
    return [i["value"] for i in order.body.get("identifiers", [])]


def rfc3339(text: str) -> dt.datetime:
    """Go's RFC 3339 (up to nanoseconds, ``Z`` or an offset) as an aware datetime."""
    head, dot, rest = text.partition(".")
    if dot:  # keep microseconds: Python's parser takes at most six fractional digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def ari_problem(resp: Any, leaf: Any) -> str:
    """'' when ``resp`` is a valid RFC 9773 answer for ``leaf``, else what is wrong with it."""
    if resp.status != 200:
        return f"status_{resp.status}"
    try:
        window = json.loads(resp.body)["suggestedWindow"]
        start, end = rfc3339(window["start"]), rfc3339(window["end"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return "no_suggested_window"
    if not start <= end <= leaf.not_valid_after_utc:
        return "window_out_of_validity"
    if not resp.headers.get("retry-after"):
        return "no_retry_after"
    return ""
