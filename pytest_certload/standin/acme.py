"""``/acme/profile/{id}/...``: certctl's per-profile ACME server (RFC 8555) for the trust_authenticated flow.

Directory, new-nonce, new-account, new-order, order, authz, finalize, cert and renewal-info (RFC
9773), answered as certctl's handler (internal/api/handler/acme.go) and services intend:
JWS-verified like certctl (:mod:`.acme_jws`), orders born ``ready`` with ``valid`` authorizations,
finalize signing synchronously with iss-local (:mod:`.issuers`), Replay-Nonce on every success and
on no error. Errors are RFC 7807 problems (:func:`.responses.problem`); an unknown profile is
certctl's serverInternal 500. SQL is in :mod:`.repository.acme`.

Where certctl departs from its own intent the stand-in follows the intent, and the contract suite
pins certctl's departure (tests/contract/test_acme_divergences.py): finalize stores the certificate
(certctl fails on empty owner/team/policy ids and an empty fingerprint), a re-finalize of a valid
order returns it, ARI finds serials with a leading zero, and the orders-per-hour 429 says
Retry-After. It reproduces the departures that are wire behaviour a client must cope with: no
Replay-Nonce on errors, a CSR whose names differ from the order's answered 500 serverInternal (the
order is marked invalid with badCSR), ``replaces`` ignored, no Retry-After on the concurrent-orders
429 (certctl has no duration to give there).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiohttp import web
from cryptography import x509
from joserfc.jwk import import_key

from pytest_certload.standin import acme_jws
from pytest_certload.standin.acme_jws import Rejected, malformed
from pytest_certload.standin.acme_wire import (
    OrderRateLimit,
    Urls,
    challenge,
    csr_names,
    identifier_problems,
    payload,
    pem,
    rand_id,
    rfc3339,
    seconds,
)
from pytest_certload.standin.gocompat import go_json, go_time, valid_ari_cert_id
from pytest_certload.standin.issuers import IssuerError, LocalIssuer
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import acme
from pytest_certload.standin.request_body import read_limited
from pytest_certload.standin.responses import json_response, problem

MAX_JWS_BODY = 64 * 1024  # certctl's MaxJWSBodyBytes
CONCURRENT_ORDERS = 5  # CERTCTL_ACME_SERVER_RATE_LIMIT_CONCURRENT_ORDERS default
TTL = timedelta(hours=24)  # order and authorization lifetime (CERTCTL_ACME_SERVER_ORDER_TTL / AUTHZ_TTL)
ARI_RETRY_AFTER_S = 21600  # CERTCTL_ACME_SERVER_ARI_POLL_INTERVAL (6 h)
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def unknown_profile() -> web.Response:
    # certctl HEAD: the profile repository's double-wrapped ErrNoRows falls through to serverInternal.
    return problem(500, "serverInternal", "ACME server error")


@dataclass(frozen=True)
class AcmeHandlers:
    """certctl's ACME handler for one profile's directory, nonces, accounts, orders and certificates."""

    db: PoolSlot
    issuer: LocalIssuer = field(default_factory=LocalIssuer)
    limiter: OrderRateLimit = field(default_factory=OrderRateLimit)
    _owner_rows: set[str] = field(default_factory=set)  # "done" once the ACME owner rows exist

    # -- unauthenticated (in ACME terms) ------------------------------------------------------
    async def directory(self, request: web.Request, rid: str) -> web.StreamResponse:
        urls = Urls(request)
        headers = {"Cache-Control": "public, max-age=0, no-cache"}
        try:
            async with self.db.connection() as conn:
                if not await acme.profile_exists(conn, urls.profile):
                    return unknown_profile()
                with contextlib.suppress(psycopg.Error):  # certctl serves the directory without a nonce then
                    headers["Replay-Nonce"] = await acme.issue_nonce(conn)
        except (psycopg.Error, OSError):
            return unknown_profile()
        names = ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo")
        paths = ("new-nonce", "new-account", "new-order", "revoke-cert", "key-change", "renewal-info")
        return json_response(200, {n: f"{urls.base}/{p}" for n, p in zip(names, paths, strict=True)}, headers)

    async def new_nonce(self, request: web.Request, rid: str) -> web.StreamResponse:
        profile_id = request["path_values"][2]
        try:
            async with self.db.connection() as conn:
                if not await acme.profile_exists(conn, profile_id):
                    return unknown_profile()
                try:
                    nonce = await acme.issue_nonce(conn)
                except psycopg.Error:
                    return problem(500, "serverInternal", "nonce issuance failed")
        except (psycopg.Error, OSError):
            return unknown_profile()
        status = 200 if request.method == "HEAD" else 204
        return web.Response(status=status, headers={"Replay-Nonce": nonce, "Cache-Control": "no-store"})

    async def renewal_info(self, request: web.Request, rid: str) -> web.StreamResponse:
        """RFC 9773: no policy window (certctl's ACME certificates carry none) -> the last third."""
        profile_id, cert_id = request["path_values"][2], request["path_values"][4]
        try:
            async with self.db.connection() as conn:
                if not await acme.profile_exists(conn, profile_id):
                    return unknown_profile()
                if not valid_ari_cert_id(cert_id):
                    return problem(400, "malformed", "ARI cert-id is malformed")
                serial_b64 = cert_id.split(".")[1]
                serial = int.from_bytes(
                    base64.urlsafe_b64decode(serial_b64 + "=" * (-len(serial_b64) % 4)), "big"
                )
                version = await acme.version_by_serial(conn, self.issuer.issuer_id, f"{serial:x}")
        except (psycopg.Error, OSError):
            return unknown_profile()
        if version is None:
            return problem(404, "malformed", "resource not found")
        now = datetime.now(UTC)
        not_after, not_before = version["expires_at"], version["not_before"]
        if now > not_after:
            start, end = now, now + timedelta(hours=24)
        else:
            third = (not_after - not_before) / 3
            start, end = max(not_after - third, now), not_after - third / 3
            end = max(end, start)
        body = {"suggestedWindow": {"start": go_time(start), "end": go_time(end)}}
        headers = {"Retry-After": str(ARI_RETRY_AFTER_S), "Cache-Control": "no-store"}
        return json_response(200, body, headers)

    # -- JWS-authenticated ---------------------------------------------------------------------
    async def _jws(self, request: web.Request, work, *, new_account: bool = False) -> web.StreamResponse:
        """Read and verify the JWS, run ``work(conn, verified, urls)``, add a Replay-Nonce on success."""
        body, too_big = await read_limited(request, MAX_JWS_BODY)
        if too_big:
            return malformed("request body too large").response()
        urls = Urls(request)
        try:
            async with self.db.connection() as conn:
                verified = await acme_jws.verify(
                    conn, body, urls.request_url, new_account=new_account, kid_for=urls.kid
                )
                response = await work(conn, verified, urls)
                if response.status < 400:
                    response.headers["Replay-Nonce"] = await acme.issue_nonce(conn)
                return response
        except Rejected as rejected:
            return rejected.response()
        except (psycopg.Error, OSError):
            return problem(500, "serverInternal", "ACME server error")

    async def new_account(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            try:
                req = payload(
                    v.payload,
                    {
                        "contact": list,
                        "termsOfServiceAgreed": bool,
                        "onlyReturnExisting": bool,
                        "externalAccountBinding": dict,
                    },
                )
            except ValueError:
                raise malformed("could not parse new-account payload") from None
            if not await acme.profile_exists(conn, urls.profile):
                return unknown_profile()
            thumb = import_key(v.jwk).thumbprint()
            account = await acme.account_by_thumbprint(conn, urls.profile, thumb)
            status = 200
            if account is None:
                if req.get("onlyReturnExisting"):
                    return problem(
                        400,
                        "accountDoesNotExist",
                        "no account exists for this JWK; submit a "
                        "new-account request without onlyReturnExisting",
                    )
                account = {
                    "account_id": "acme-acc-" + thumb,
                    "jwk_thumbprint": thumb,
                    "jwk_pem": acme_jws.jwk_to_pem(v.jwk),
                    "contact": req.get("contact"),
                    "status": "valid",
                    "profile_id": urls.profile,
                }
                try:
                    await acme.insert_account(conn, account)
                except psycopg.errors.UniqueViolation:  # the same key on another profile
                    return problem(500, "serverInternal", "ACME server error")
                status = 201
            kid = urls.kid(account["account_id"])
            out: dict[str, Any] = {"status": account["status"]}
            if account["contact"]:
                out["contact"] = account["contact"]
            out["orders"] = kid + "/orders"
            return json_response(status, out, {"Location": kid})

        return await self._jws(request, work, new_account=True)

    async def new_order(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            try:
                req = payload(v.payload, {"identifiers": list, "notBefore": str, "notAfter": str})
                ids = [
                    payload(json.dumps(i).encode(), {"type": str, "value": str})
                    for i in req.get("identifiers", [])
                ]
            except ValueError:
                raise malformed("could not parse new-order payload") from None
            problems = identifier_problems(ids)
            if problems:
                body = {
                    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                    "detail": "one or more identifiers were rejected",
                    "status": 400,
                    "subproblems": problems,
                }
                return web.Response(
                    status=400, body=go_json(body), headers={"Content-Type": "application/problem+json"}
                )
            account_id = v.account["account_id"]
            if not self.limiter.allow(account_id):
                resp = problem(429, "rateLimited", "request rate limit exceeded; retry later")
                resp.headers["Retry-After"] = str(self.limiter.retry_after(account_id))
                return resp
            if await acme.count_active_orders(conn, account_id) >= CONCURRENT_ORDERS:
                return problem(
                    429,
                    "rateLimited",
                    "too many concurrent orders for this account; finish or "
                    "cancel pending orders before submitting more",
                )
            prof = await acme.profile(conn, urls.profile)
            if prof is None:
                return unknown_profile()
            trusted = prof["acme_auth_mode"] != "challenge"
            now = datetime.now(UTC)
            order = {
                "order_id": "acme-ord-" + rand_id(),
                "account_id": account_id,
                "identifiers": [{"type": i.get("type", ""), "value": i.get("value", "")} for i in ids],
                "status": "ready" if trusted else "pending",
                "expires_at": now + TTL,
                "not_before": rfc3339(req.get("notBefore")),
                "not_after": rfc3339(req.get("notAfter")),
                "created_at": now,
                "certificate_id": None,
                "error": None,
            }
            authzs = [
                {
                    "authz_id": "acme-authz-" + rand_id(),
                    "identifier": i,
                    "expires_at": now + TTL,
                    "status": "valid" if trusted else "pending",
                    "wildcard": i["value"].startswith("*."),
                    "challenge": {
                        "challenge_id": "acme-chall-" + rand_id(),
                        "token": rand_id(),
                        "status": "valid" if trusted else "pending",
                        "validated_at": now if trusted else None,
                    },
                }
                for i in order["identifiers"]
            ]
            await acme.insert_order(conn, order, authzs)
            body = urls.order(order, await acme.authz_ids(conn, order["order_id"]))
            return json_response(201, body, {"Location": f"{urls.base}/order/{order['order_id']}"})

        return await self._jws(request, work)

    async def _owned_order(self, conn, v: acme_jws.Verified, order_id: str) -> dict[str, Any]:
        order = await acme.order_by_id(conn, order_id)
        if order is None:
            raise Rejected(404, "malformed", "resource not found")
        if order["account_id"] != v.account["account_id"]:
            raise Rejected(401, "unauthorized", "account does not own this resource")
        return order

    async def order(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            order = await self._owned_order(conn, v, request["path_values"][4])
            return json_response(200, urls.order(order, await acme.authz_ids(conn, order["order_id"])))

        return await self._jws(request, work)

    async def authz(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            a = await acme.authz_with_challenges(
                conn, request["path_values"][4]
            )  # no ownership check: certctl's
            if a is None:
                return problem(404, "malformed", "resource not found")
            out: dict[str, Any] = {
                "identifier": {"type": a["identifier"]["type"], "value": a["identifier"]["value"]},
                "status": a["status"],
                "expires": seconds(a["expires_at"]),
            }
            if a["wildcard"]:
                out["wildcard"] = True
            out["challenges"] = [challenge(c, urls) for c in a["challenges"]]
            return json_response(200, out)

        return await self._jws(request, work)

    async def cert(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            chain = await acme.certificate_chain(conn, request["path_values"][4])
            if chain is None:
                return problem(404, "malformed", "resource not found")
            return web.Response(
                status=200, body=chain.encode(), headers={"Content-Type": "application/pem-certificate-chain"}
            )

        return await self._jws(request, work)

    async def finalize(self, request: web.Request, rid: str) -> web.StreamResponse:
        async def work(conn, v: acme_jws.Verified, urls: Urls) -> web.Response:
            try:
                csr_b64 = payload(v.payload, {"csr": str}).get("csr", "")
            except ValueError:
                raise malformed("could not parse finalize payload") from None
            try:
                if not _B64URL.match(csr_b64):
                    raise binascii.Error("not base64url")
                der = base64.urlsafe_b64decode(csr_b64 + "=" * (-len(csr_b64) % 4))
            except (binascii.Error, ValueError):
                return problem(400, "badCSR", "csr field is not valid base64url")
            try:
                csr = x509.load_der_x509_csr(der)
            except ValueError:
                return problem(400, "badCSR", "csr did not parse as a valid PKCS#10")
            order = await self._owned_order(conn, v, request["path_values"][4])
            location = {"Location": f"{urls.base}/order/{order['order_id']}"}
            if order["status"] == "valid" and order["certificate_id"]:  # RFC 8555 §7.4, certctl's intent
                return json_response(
                    200, urls.order(order, await acme.authz_ids(conn, order["order_id"])), location
                )
            if order["status"] not in ("ready", "processing"):
                return problem(
                    403, "orderNotReady", "order is not in the `ready` state; complete authorizations first"
                )
            return await self._issue(conn, order, csr, der, urls, location)

        return await self._jws(request, work)

    async def _issue(self, conn, order, csr, der, urls: Urls, location) -> web.Response:
        wanted = {i["value"].lower() for i in order["identifiers"] if i["type"] == "dns"}
        cn, names = csr_names(csr)
        if names != wanted:  # certctl marks the order invalid (badCSR) and answers 500 (its departure)
            detail = (
                f"CSR identifier count ({len(names)}) differs from order identifier count ({len(wanted)})"
                if len(names) != len(wanted)
                else f"CSR is missing the order identifier {json.dumps(sorted(wanted - names)[0])}"
            )
            await acme.set_order_status(
                conn,
                order["order_id"],
                "invalid",
                {"type": "urn:ietf:params:acme:error:badCSR", "detail": detail, "status": 400},
            )
            return problem(500, "serverInternal", "ACME server error")
        prof = await acme.profile(conn, urls.profile)
        if prof is None:
            return unknown_profile()
        sans = [i["value"] for i in order["identifiers"] if i["type"] == "dns"]
        await acme.set_order_status(conn, order["order_id"], "processing")
        try:
            issued = await self.issuer.issue(
                conn, csr, sans, prof["allowed_ekus"] or ["serverAuth"], int(prof["max_ttl_seconds"] or 0)
            )
        except IssuerError:
            await acme.set_order_status(
                conn,
                order["order_id"],
                "invalid",
                {
                    "type": "urn:ietf:params:acme:error:serverInternal",
                    "detail": "issuer rejected the CSR",
                    "status": 500,
                },
            )
            return problem(500, "serverInternal", "ACME server error")
        if not self._owner_rows:
            await acme.ensure_acme_owner(conn)
            self._owner_rows.add("done")
        cert = {
            "id": "mc-acme-" + rand_id(),
            "name": f"acme-{order['order_id']}",
            "common_name": cn or sans[0],
            "sans": sans,
            "issuer_id": self.issuer.issuer_id,
            "profile_id": prof["id"],
            "expires_at": issued.not_after,
        }
        version = {
            "id": secrets.token_hex(16),
            "serial": issued.serial,
            "not_before": issued.not_before,
            "not_after": issued.not_after,
            "fingerprint": issued.fingerprint,
            "pem_chain": issued.cert_pem + issued.chain_pem,
            "csr_pem": pem("CERTIFICATE REQUEST", der),
            "key_algorithm": issued.key_algorithm,
            "key_size": issued.key_size,
        }
        await acme.store_issued(conn, order, cert, version)
        order = {**order, "status": "valid", "certificate_id": cert["id"], "error": None}
        return json_response(200, urls.order(order, await acme.authz_ids(conn, order["order_id"])), location)
