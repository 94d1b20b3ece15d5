"""A synchronous ACME client for the contract suite, on the load client's JWS and certificate code.

The same signing (:func:`pytest_certload.scenarios.acme_client.sign`), keys and CSRs the scenarios
use, over httpx, plus ways to send what a correct client never would (a raw body, a chosen nonce,
another key) so the suite can pin how each target refuses it.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pytest_certload.scenarios.acme_certs import IssuerCA, Trust, new_csr, new_key, verify_issued
from pytest_certload.scenarios.acme_client import JOSE_CT, AccountKey, sign

PROFILE = "prof-test"
PREFIX = "urn:ietf:params:acme:error:"


def problem(r: httpx.Response) -> dict[str, Any]:
    assert r.headers.get("content-type") == "application/problem+json", (r.status_code, r.text)
    return r.json()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_id_for(aki_b64: str, serial: int) -> str:
    """An RFC 9773 CertID for a serial number given as an integer."""
    return aki_b64 + "." + b64url(serial.to_bytes(serial.bit_length() // 8 + 1, "big"))


@dataclass
class Account:
    key: AccountKey
    kid: str


def names(n: int = 1) -> list[str]:
    base = f"contract-{secrets.token_hex(5)}"
    return [f"{base}.acme.certload.test"] + [f"{base}-{i}.acme.certload.test" for i in range(1, n)]


class Acme:
    """One target's prof-test ACME server, driven step by step."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        r = http.get(f"/acme/profile/{PROFILE}/directory")
        assert r.status_code == 200, r.text
        self.directory: dict[str, str] = r.json()

    def nonce(self) -> str:
        r = self.http.head(self.directory["newNonce"])
        assert r.status_code == 200
        return r.headers["replay-nonce"]

    def post_raw(self, url: str, body: bytes) -> httpx.Response:
        return self.http.post(url, content=body, headers={"Content-Type": JOSE_CT})

    def post(
        self, url: str, payload: Any, key: AccountKey, kid: str | None, *, nonce: str | None = None
    ) -> httpx.Response:
        raw = b"" if payload is None else json.dumps(payload).encode()
        return self.post_raw(url, sign(key, url, self.nonce() if nonce is None else nonce, raw, kid))

    def new_account(self, key: AccountKey | None = None) -> Account:
        key = key or AccountKey()
        r = self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True}, key, None)
        assert r.status_code == 201, r.text
        return Account(key, r.headers["location"])

    def new_order(self, account: Account, identifiers: list[str]) -> httpx.Response:
        payload = {"identifiers": [{"type": "dns", "value": n} for n in identifiers]}
        return self.post(self.directory["newOrder"], payload, account.key, account.kid)

    def order(self, account: Account, identifiers: list[str]) -> tuple[str, dict[str, Any]]:
        r = self.new_order(account, identifiers)
        assert r.status_code == 201, r.text
        return r.headers["location"], r.json()

    def get(self, account: Account, url: str) -> httpx.Response:
        """POST-as-GET."""
        return self.post(url, None, account.key, account.kid)

    def finalize(
        self, account: Account, order: dict[str, Any], csr_names: list[str], key=None
    ) -> httpx.Response:
        csr = new_csr(csr_names, key or new_key())
        return self.post(order["finalize"], {"csr": csr}, account.key, account.kid)

    def issue(self, account: Account, trust: Trust, identifiers: list[str] | None = None):
        """The whole trust_authenticated flow; returns (order URL, finalized order, leaf)."""
        identifiers = identifiers or names()
        url, order = self.order(account, identifiers)
        key = new_key()
        r = self.finalize(account, order, identifiers, key)
        assert r.status_code == 200, r.text
        done = r.json()
        cert = self.get(account, done["certificate"])
        assert cert.status_code == 200, cert.text
        assert cert.headers["content-type"] == "application/pem-certificate-chain"
        return url, done, verify_issued(cert.content, trust, identifiers, key)

    def renewal_info(self, cert_id: str) -> httpx.Response:
        return self.http.get(f"{self.directory['renewalInfo']}/{cert_id}")


def register_issuer_ca(http: httpx.Client, directory: Path) -> Trust:
    """Point the target's iss-local at a CA of ours (PUT /api/v1/issuers/iss-local)."""
    ca = IssuerCA.create(directory)
    r = http.put("/api/v1/issuers/iss-local", json=ca.issuer_body())
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "iss-local"
    return Trust.registered(ca.cert)
