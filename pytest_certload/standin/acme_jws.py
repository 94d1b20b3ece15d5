"""certctl's JWS verifier (internal/api/acme/jws.go) for the stand-in: the same checks, same order.

1. the body parses as a JWS with exactly one signature, ``alg`` in {RS256, ES256, EdDSA}
   (else 400 malformed "malformed JWS"); 2. ``typ`` absent or ``application/jose+json``;
3. ``url`` present and equal to ``https://<Host><path>`` (else 401 unauthorized); 4. ``nonce``
   present (else 400 badNonce) and consumed -- before any key is looked at, so a rejected JWS still
   burns its nonce (else 400 badNonce); 5. exactly one of ``kid``/``jwk``, ``jwk`` on new-account only
   (else 400 malformed); 6. the ``kid`` is this profile's canonical account URL and names a ``valid``
   account (else 400 malformed / accountDoesNotExist, 401 unauthorized); 7. the signature verifies
   (else 401 unauthorized). Error answers carry no Replay-Nonce, as certctl's WriteProblem.

Signatures are checked with joserfc (the library the load client signs with); accounts store their
JWK as certctl does, a PEM block "ACME ACCOUNT JWK" around the JWK's JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import import_key
from joserfc.registry import HeaderParameter

from pytest_certload.standin.repository import acme as repo
from pytest_certload.standin.responses import problem

ALLOWED_ALGS = ("RS256", "ES256", "EdDSA")
REGISTRY = jws.JWSRegistry(
    header_registry={"nonce": HeaderParameter("nonce", "str"), "url": HeaderParameter("url", "str")},
    algorithms=list(ALLOWED_ALGS),
    strict_check_header=False,  # go-jose keeps unknown header parameters (ExtraHeaders)
)
REGISTRY.max_header_length = REGISTRY.max_payload_length = 64 * 1024  # certctl's MaxJWSBodyBytes caps both
JWK_PEM_HEADER, JWK_PEM_FOOTER = "-----BEGIN ACME ACCOUNT JWK-----", "-----END ACME ACCOUNT JWK-----"
_JWK_FIELDS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}


class Rejected(Exception):
    """A JWS certctl would refuse; ``response()`` is its problem document."""

    def __init__(self, status: int, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.type, self.detail = status, type_, detail

    def response(self) -> web.Response:
        return problem(self.status, self.type, self.detail)


def malformed(detail: str = "malformed JWS") -> Rejected:
    return Rejected(400, "malformed", detail)


def unauthorized(detail: str) -> Rejected:
    return Rejected(401, "unauthorized", detail)


@dataclass(frozen=True)
class Verified:
    payload: bytes
    alg: str
    account: dict[str, Any] | None  # the kid path's account row
    jwk: dict[str, Any] | None  # the jwk path's key (new-account)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise malformed()
    try:  # go-jose trims padding, then decodes base64url without it
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise malformed() from None


def parse(body: bytes) -> tuple[dict[str, Any], dict[str, Any] | str, bytes]:
    """go-jose's ParseSigned(body, allowed) + certctl's one-signature rule: (header, JWS, payload)."""
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise malformed() from None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise malformed() from None
        if not isinstance(obj, dict):
            raise malformed()
        if "signatures" in obj:  # general serialization: certctl accepts exactly one signature
            sigs = obj["signatures"]
            if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
                raise malformed()
            obj = {"payload": obj.get("payload"), **sigs[0]}
        parts = (obj.get("protected"), obj.get("payload"), obj.get("signature"))
        if not all(isinstance(p, str) for p in parts):
            raise malformed()
        serialized: dict[str, Any] | str = {k: obj[k] for k in ("protected", "payload", "signature")}
    else:
        parts = tuple(text.split("."))
        if len(parts) != 3:
            raise malformed()
        serialized = text
    try:
        header = json.loads(_b64(parts[0]))
    except ValueError:
        raise malformed() from None
    if not isinstance(header, dict) or header.get("alg") not in ALLOWED_ALGS:
        raise malformed()
    return header, serialized, _b64(parts[1])


def jwk_to_pem(jwk: dict[str, Any]) -> str:
    """certctl's JWKToPEM: go-jose's JWK JSON (public members, its field order), base64, 64 a line."""
    fields = _JWK_FIELDS.get(str(jwk.get("kty")), tuple(sorted(jwk)))
    raw = json.dumps({k: jwk[k] for k in fields if k in jwk}, separators=(",", ":")).encode()
    encoded = base64.b64encode(raw).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return "\n".join([JWK_PEM_HEADER, *lines, JWK_PEM_FOOTER]) + "\n"


def jwk_from_pem(text: str) -> dict[str, Any]:
    body = text.strip().removeprefix(JWK_PEM_HEADER).split(JWK_PEM_FOOTER)[0]
    return json.loads(base64.b64decode("".join(body.split())))


_KEYS: dict[str, Any] = {}  # account id -> imported key (accounts never change keys here)


def _account_key(account: dict[str, Any]) -> Any:
    key = _KEYS.get(account["account_id"])
    if key is None:
        if len(_KEYS) > 50_000:
            _KEYS.clear()
        try:
            key = _KEYS[account["account_id"]] = import_key(jwk_from_pem(account["jwk_pem"]))
        except (JoseError, ValueError, KeyError, TypeError):
            raise malformed("invalid or unsupported JWK") from None
    return key


async def verify(
    conn: psycopg.AsyncConnection,
    body: bytes,
    request_url: str,
    *,
    new_account: bool,
    kid_for: Callable[[str], str],
) -> Verified:
    """certctl's VerifyJWS; raises :class:`Rejected` with the problem certctl answers."""
    header, serialized, payload = parse(body)
    typ = header.get("typ")
    if typ is not None and typ not in ("application/jose+json", ""):
        raise malformed("protected header `typ` must be `application/jose+json`")
    url = header.get("url")
    if not isinstance(url, str) or not url or url != request_url:
        raise unauthorized("protected header `url` mismatch or missing")
    nonce = header.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise malformed()
    if not nonce:
        raise Rejected(400, "badNonce", "protected header `nonce` is required")
    if not await repo.consume_nonce(conn, nonce):
        raise Rejected(400, "badNonce", "nonce missing, replayed, or expired")
    kid, jwk = header.get("kid"), header.get("jwk")
    if bool(kid) == (jwk is not None):
        raise malformed("protected header MUST contain exactly one of `kid` or `jwk`")
    if new_account and kid:
        raise malformed("this endpoint requires `jwk` (new-account flow); got `kid`")
    if not new_account and jwk is not None:
        raise malformed("this endpoint requires `kid` (registered account); got `jwk`")
    account = None
    if kid:
        if not isinstance(kid, str) or "/account/" not in kid:
            raise malformed()
        account_id = kid.rsplit("/account/", 1)[1]
        if not account_id or kid_for(account_id) != kid:
            raise malformed()
        account = await repo.account_by_id(conn, account_id)
        if account is None:
            raise Rejected(400, "accountDoesNotExist", "kid points at unknown account")
        if account["status"] != "valid":
            raise unauthorized("account status is not `valid`")
        key = _account_key(account)
    else:
        try:
            if not isinstance(jwk, dict) or "d" in jwk:
                raise ValueError("not a public JWK")
            key = import_key(jwk)
        except (JoseError, ValueError, KeyError, TypeError):
            raise malformed("invalid or unsupported JWK") from None
    try:
        if isinstance(serialized, str):
            jws.deserialize_compact(serialized, key, algorithms=[header["alg"]], registry=REGISTRY)
        else:
            jws.deserialize_json(serialized, key, algorithms=[header["alg"]], registry=REGISTRY)
    except (JoseError, ValueError, TypeError):
        raise unauthorized("signature did not verify") from None
    return Verified(payload, header["alg"], account, jwk if not kid else None)
