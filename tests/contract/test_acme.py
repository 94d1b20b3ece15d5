"""ACME directory, new-nonce and renewal-info under /acme/profile/{id}/ (profile prof-test)."""

from __future__ import annotations

import re

import pytest

NONCE = re.compile(r"^[A-Za-z0-9_-]{43}$")
PROBLEM = "application/problem+json"
BASE = "/acme/profile/prof-test"


def nonce_exists(db, nonce: str) -> bool:
    return (
        db.execute("SELECT count(*) FROM acme_nonces WHERE nonce = %s AND NOT used", (nonce,)).fetchone()[0]
        == 1
    )


def test_acme_needs_a_bearer_key_without_dashboard(anon):
    r = anon.get(f"{BASE}/directory")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="certctl"'


def test_directory(api, db):
    r = api.get(f"{BASE}/directory", headers={"Host": "acme.example.test:8443"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "public, max-age=0, no-cache"
    base = "https://acme.example.test:8443/acme/profile/prof-test"
    assert r.json() == {
        "newNonce": f"{base}/new-nonce",
        "newAccount": f"{base}/new-account",
        "newOrder": f"{base}/new-order",
        "revokeCert": f"{base}/revoke-cert",
        "keyChange": f"{base}/key-change",
        "renewalInfo": f"{base}/renewal-info",
    }
    nonce = r.headers["replay-nonce"]
    assert NONCE.match(nonce)
    assert nonce_exists(db, nonce)


def test_new_nonce_head_and_get(api, db):
    head = api.head(f"{BASE}/new-nonce")
    assert head.status_code == 200
    assert head.headers["cache-control"] == "no-store"
    get = api.get(f"{BASE}/new-nonce")
    assert get.status_code == 204
    assert get.content == b""
    nonces = {head.headers["replay-nonce"], get.headers["replay-nonce"]}
    assert len(nonces) == 2
    assert all(NONCE.match(n) and nonce_exists(db, n) for n in nonces)


def test_renewal_info_unknown_cert_is_404(api):
    r = api.get(f"{BASE}/renewal-info/aaaa.bbbb")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert r.json() == {
        "type": "urn:ietf:params:acme:error:malformed",
        "detail": "resource not found",
        "status": 404,
    }


@pytest.mark.parametrize("cert_id", ["aaaa", "a.b", "aaaa.", "aa=a.bbbb", "aaaa.bb+b", "a.b.c"])
def test_renewal_info_malformed_is_400(api, cert_id):
    r = api.get(f"{BASE}/renewal-info/{cert_id}")
    assert r.status_code == 400
    assert r.headers["content-type"] == PROBLEM
    assert r.json() == {"type": "urn:ietf:params:acme:error:malformed", "detail": "ARI cert-id is malformed",
                        "status": 400}  # fmt: skip


@pytest.mark.parametrize("suffix", ["directory", "new-nonce", "renewal-info/aaaa.bbbb"])
def test_unknown_profile_is_500_problem(api, db, suffix):
    """certctl HEAD: the profile lookup double-wraps ErrNoRows, so 'profile not found' (404) never fires."""
    count = db.execute("SELECT count(*) FROM acme_nonces").fetchone()[0]
    r = api.get(f"/acme/profile/prof-nope/{suffix}")
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    assert r.json() == {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "ACME server error",
                        "status": 500}  # fmt: skip
    assert db.execute("SELECT count(*) FROM acme_nonces").fetchone()[0] == count
