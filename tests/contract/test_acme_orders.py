"""JWS-signed RFC 8555 requests under /acme/profile/prof-test/: accounts, orders, authorizations, errors.

What both targets answer alike. Where certctl departs from what it intends, the departure is pinned
in test_acme_divergences.py and the intended behaviour is checked here on the stand-in only.
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from pytest_certload.scenarios.acme_certs import ari_cert_id, serial_hex40
from pytest_certload.scenarios.acme_client import AccountKey, sign
from tests.contract.acme_helpers import PREFIX, cert_id_for, names, problem

BAD_NONCE = {"type": PREFIX + "badNonce", "detail": "nonce missing, replayed, or expired", "status": 400}
MALFORMED_JWS = {"type": PREFIX + "malformed", "detail": "malformed JWS", "status": 400}


def nonce_used(db, nonce: str) -> bool | None:
    row = db.execute("SELECT used FROM acme_nonces WHERE nonce = %s", (nonce,)).fetchone()
    return None if row is None else row[0]


def stand_in_only(target, divergence: str) -> None:
    if target.flavour == "certctl":
        pytest.skip(f"certctl departs from this (pinned: test_acme_divergences.py, [{divergence}])")


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_new_account_then_the_same_key_again(acme, db, alg):
    client, _ = acme
    key = AccountKey(alg)
    first = client.post(client.directory["newAccount"], {"termsOfServiceAgreed": True}, key, None)
    assert first.status_code == 201, first.text
    kid = first.headers["location"]
    assert kid == client.directory["newAccount"].replace("new-account", "account/" + key.account_id)
    assert first.json() == {"status": "valid", "orders": kid + "/orders"}
    assert first.headers["replay-nonce"]
    again = client.post(client.directory["newAccount"], {}, key, None)
    assert (again.status_code, again.headers["location"]) == (200, kid)
    pem = db.execute("SELECT jwk_pem FROM acme_accounts WHERE account_id = %s", (key.account_id,)).fetchone()[
        0
    ]
    assert pem.startswith("-----BEGIN ACME ACCOUNT JWK-----\n")


def test_only_return_existing_for_an_unknown_key(acme):
    client, _ = acme
    r = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, AccountKey(), None)
    assert r.status_code == 400
    assert problem(r)["type"] == PREFIX + "accountDoesNotExist"
    assert "replay-nonce" not in r.headers


def test_new_order_is_ready_with_valid_authorizations(acme):
    client, _ = acme
    account = client.new_account()
    wanted = names(2)
    r = client.new_order(account, wanted)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "ready"
    assert order["identifiers"] == [{"type": "dns", "value": n} for n in wanted]
    assert order["finalize"] == r.headers["location"] + "/finalize"
    assert len(order["authorizations"]) == 2 and "certificate" not in order
    values = set()
    for url in order["authorizations"]:
        authz = client.get(account, url)
        assert authz.status_code == 200, authz.text
        body = authz.json()
        assert body["status"] == "valid"
        [challenge] = body["challenges"]
        assert (challenge["type"], challenge["status"]) == ("http-01", "valid") and challenge["validated"]
        values.add(body["identifier"]["value"])
    assert values == set(wanted)
    again = client.get(account, r.headers["location"])
    assert again.status_code == 200
    assert {**again.json(), "authorizations": None} == {**order, "authorizations": None}
    assert sorted(again.json()["authorizations"]) == sorted(
        order["authorizations"]
    )  # certctl: ORDER BY a tie


@pytest.mark.parametrize(
    ("identifiers", "sub"),
    [
        (
            [],
            {
                "type": PREFIX + "malformed",
                "detail": "new-order requires at least one identifier",
                "status": 400,
            },
        ),
        ([{"type": "ip", "value": "127.0.0.1"}], {"type": PREFIX + "rejectedIdentifier", "status": 400}),
        ([{"type": "dns", "value": ""}], {"type": PREFIX + "rejectedIdentifier", "status": 400}),
    ],
)
def test_rejected_identifiers(acme, identifiers, sub):
    client, _ = acme
    account = client.new_account()
    r = client.post(client.directory["newOrder"], {"identifiers": identifiers}, account.key, account.kid)
    assert r.status_code == 400
    doc = problem(r)
    assert doc["type"] == PREFIX + "rejectedIdentifier"
    [got] = doc["subproblems"]
    assert {k: got[k] for k in sub} == sub


@pytest.mark.parametrize(
    "body",
    [
        b"not a jws",
        b'{"protected":"e30","payload":"","signature":""}',  # alg missing
        b'{"payload":"","signatures":[{"protected":"x","signature":"y"},{"protected":"x","signature":"y"}]}',
    ],
)
def test_malformed_jws(acme, db, body):
    client, _ = acme
    r = client.post_raw(client.directory["newOrder"], body)
    assert r.status_code == 400
    assert problem(r) == MALFORMED_JWS
    assert "replay-nonce" not in r.headers


def test_algorithm_outside_the_allow_list_is_malformed(acme):
    client, _ = acme
    header = {
        "alg": "HS256",
        "nonce": client.nonce(),
        "url": client.directory["newOrder"],
        "kid": "x/account/y",
    }
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    body = json.dumps({"protected": protected, "payload": "", "signature": "AAAA"}).encode()
    r = client.post_raw(client.directory["newOrder"], body)
    assert (r.status_code, problem(r)) == (400, MALFORMED_JWS)


def test_wrong_nonce(acme, db):
    client, _ = acme
    account = client.new_account()
    made_up = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    r = client.post(
        client.directory["newOrder"], {"identifiers": []}, account.key, account.kid, nonce=made_up
    )
    assert r.status_code == 400
    assert problem(r) == BAD_NONCE
    assert "replay-nonce" not in r.headers


def test_replayed_nonce(acme):
    client, _ = acme
    account = client.new_account()
    nonce = client.nonce()
    url = client.directory["newOrder"]
    first = client.post(
        url, {"identifiers": [{"type": "dns", "value": names()[0]}]}, account.key, account.kid, nonce=nonce
    )
    assert first.status_code == 201
    again = client.post(
        url, {"identifiers": [{"type": "dns", "value": names()[0]}]}, account.key, account.kid, nonce=nonce
    )
    assert (again.status_code, problem(again)) == (400, BAD_NONCE)


def test_missing_nonce(acme):
    client, _ = acme
    account = client.new_account()
    r = client.post(client.directory["newOrder"], {}, account.key, account.kid, nonce="")
    assert r.status_code == 400
    assert problem(r)["detail"] == "protected header `nonce` is required"


def test_bad_signature_is_401_and_burns_the_nonce(acme, db):
    client, _ = acme
    account = client.new_account()
    nonce = client.nonce()
    url = client.directory["newOrder"]
    body = sign(AccountKey(), url, nonce, b"{}", account.kid)  # another key, this account's kid
    r = client.post_raw(url, body)
    assert r.status_code == 401
    assert problem(r) == {
        "type": PREFIX + "unauthorized",
        "detail": "signature did not verify",
        "status": 401,
    }
    assert nonce_used(db, nonce) is True


def test_url_mismatch_is_401_and_keeps_the_nonce(acme, db):
    client, _ = acme
    account = client.new_account()
    nonce = client.nonce()
    body = sign(account.key, client.directory["newAccount"], nonce, b"{}", account.kid)
    r = client.post_raw(client.directory["newOrder"], body)
    assert r.status_code == 401
    assert problem(r)["detail"] == "protected header `url` mismatch or missing"
    assert nonce_used(db, nonce) is False


@pytest.mark.parametrize("where", ["kid on new-account", "jwk on new-order"])
def test_kid_and_jwk_belong_to_their_endpoints(acme, where):
    client, _ = acme
    account = client.new_account()
    if where == "kid on new-account":
        r = client.post(client.directory["newAccount"], {}, account.key, account.kid)
        detail = "this endpoint requires `jwk` (new-account flow); got `kid`"
    else:
        r = client.post(client.directory["newOrder"], {}, account.key, None)
        detail = "this endpoint requires `kid` (registered account); got `jwk`"
    assert (r.status_code, problem(r)["detail"]) == (400, detail)


def test_unknown_account(acme):
    client, _ = acme
    stranger = AccountKey()
    kid = client.directory["newAccount"].replace("new-account", "account/" + stranger.account_id)
    r = client.post(client.directory["newOrder"], {}, stranger, kid)
    assert r.status_code == 400
    assert problem(r) == {
        "type": PREFIX + "accountDoesNotExist",
        "detail": "kid points at unknown account",
        "status": 400,
    }


def test_another_accounts_order_is_401(acme):
    client, _ = acme
    owner, other = client.new_account(), client.new_account()
    url, _ = client.order(owner, names())
    r = client.get(other, url)
    assert r.status_code == 401
    assert problem(r)["detail"] == "account does not own this resource"


@pytest.mark.parametrize(
    ("csr", "detail"),
    [
        ("not base64url!", "csr field is not valid base64url"),
        ("AAAA", "csr did not parse as a valid PKCS#10"),
    ],
)
def test_finalize_with_a_broken_csr_is_bad_csr(acme, csr, detail):
    client, _ = acme
    account = client.new_account()
    _, order = client.order(account, names())
    r = client.post(order["finalize"], {"csr": csr}, account.key, account.kid)
    assert r.status_code == 400
    assert problem(r) == {"type": PREFIX + "badCSR", "detail": detail, "status": 400}


def test_sixth_open_order_is_rate_limited(acme):
    client, _ = acme
    account = client.new_account()
    for _ in range(5):
        client.order(account, names())
    r = client.new_order(account, names())
    assert r.status_code == 429
    assert problem(r) == {
        "type": PREFIX + "rateLimited",
        "detail": "too many concurrent orders for this account; finish or cancel pending orders before "
        "submitting more",
        "status": 429,
    }


# -- what certctl intends and the stand-in does (certctl's departures: test_acme_divergences.py) --------


def test_issuance_chains_to_our_issuer_and_ari_answers(acme, contract_target):
    stand_in_only(contract_target, "finalize-empty-fks")
    client, trust = acme
    account = client.new_account()
    wanted = names(2)
    _, order, leaf = client.issue(account, trust, wanted)
    assert order["status"] == "valid" and order["certificate"]
    r = client.renewal_info(ari_cert_id(leaf))
    assert r.status_code == 200, r.text
    assert (r.headers["retry-after"], r.headers["cache-control"]) == ("21600", "no-store")
    window = r.json()["suggestedWindow"]
    assert window["start"] < window["end"]


def test_refinalize_of_a_valid_order_returns_it(acme, contract_target):
    stand_in_only(contract_target, "refinalize-valid-is-403")
    client, trust = acme
    account = client.new_account()
    url, order, _ = client.issue(account, trust)
    again = client.finalize(account, order, [i["value"] for i in order["identifiers"]])
    assert again.status_code == 200
    assert {**again.json(), "authorizations": None} == {**order, "authorizations": None}
    assert sorted(again.json()["authorizations"]) == sorted(
        order["authorizations"]
    )  # certctl: ORDER BY a tie
    assert again.headers["location"] == url


def test_ari_finds_a_serial_with_a_leading_zero(acme, contract_target, db):
    stand_in_only(contract_target, "ari-serial-leading-zero")
    client, trust = acme
    _, _, leaf = client.issue(client.new_account(), trust)
    db.execute(
        "UPDATE certificate_versions SET serial_number = %s WHERE serial_number = %s",
        ("0" + serial_hex40(leaf)[1:], serial_hex40(leaf)),
    )
    aki = ari_cert_id(leaf).split(".")[0]
    assert client.renewal_info(cert_id_for(aki, int(serial_hex40(leaf)[1:], 16))).status_code == 200


def test_orders_per_hour_limit_says_when_to_retry(acme, contract_target):
    stand_in_only(contract_target, "no-retry-after-on-429")
    client, _ = acme
    account = client.new_account()
    for _ in range(100):
        _, order = client.order(account, n := names())
        assert client.finalize(account, order, n).status_code == 200
    r = client.new_order(account, names())
    assert r.status_code == 429
    assert problem(r)["detail"] == "request rate limit exceeded; retry later"
    assert int(r.headers["retry-after"]) >= 1
