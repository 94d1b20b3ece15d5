"""certctl's known departures from its own intent on the ACME issuance path, pinned against certctl.

One test per entry of :data:`pytest_certload.scenarios.acme_defects.DEFECTS` (``test_<key>``), each
asserting the departure as certctl 151107c shows it; a certctl that fixes one fails its pin, and the
entry goes (from the catalogue, here, and from the scenarios' failure messages). Departures the
stand-in reproduces, because a client must cope with them (:data:`REPRODUCED`), are asserted on
both targets; for the others the stand-in does what certctl intends, checked in test_acme_orders.py.

Three pins need a finalize that succeeds once, which certctl allows only when rows with an empty id
exist in ``owners``, ``teams`` and ``renewal_policies``: they run on a certctl of their own whose
database gets those rows (:func:`fk_rows`) -- a test-only workaround, never used by the scenarios.
"""

from __future__ import annotations

import secrets

import pytest

from pytest_certload.scenarios.acme_certs import ari_cert_id
from pytest_certload.scenarios.acme_defects import DEFECTS
from tests.contract.acme_helpers import PREFIX, cert_id_for, names, problem
from tests.contract.conftest import acme_for

REPRODUCED = {"no-nonce-on-errors", "csr-mismatch-is-500"}
SERVER_INTERNAL = {"type": PREFIX + "serverInternal", "detail": "ACME server error", "status": 500}


def certctl_only(target) -> None:
    if target.flavour != "certctl":
        pytest.skip("the stand-in does what certctl intends here (test_acme_orders.py)")


def test_every_defect_is_pinned_here():
    pinned = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {k.replace("-", "_") for k in DEFECTS} <= pinned


def test_finalize_empty_fks(acme, contract_target, db):
    certctl_only(contract_target)
    client, _ = acme
    account = client.new_account()
    url, order = client.order(account, wanted := names())
    r = client.finalize(account, order, wanted)
    assert (r.status_code, problem(r)) == (500, SERVER_INTERNAL)
    assert client.get(account, url).json()["status"] == "processing"
    name = "acme-" + url.rsplit("/", 1)[1]
    assert db.execute("SELECT count(*) FROM managed_certificates WHERE name = %s", (name,)).fetchone()[0] == 0


def test_stuck_orders_block_account(acme, contract_target, db):
    certctl_only(contract_target)
    client, _ = acme
    account = client.new_account()
    for _ in range(5):
        _, order = client.order(account, wanted := names())
        assert client.finalize(account, order, wanted).status_code == 500
    r = client.new_order(account, names())
    assert r.status_code == 429
    assert problem(r)["detail"].startswith("too many concurrent orders")
    stuck = db.execute(
        "SELECT count(*) FROM acme_orders WHERE account_id = %s AND status = 'processing'",
        (account.key.account_id,),
    ).fetchone()[0]
    assert stuck == 5


def test_no_nonce_on_errors(acme):
    client, _ = acme
    account = client.new_account()
    bad = client.post(client.directory["newOrder"], {"identifiers": []}, account.key, account.kid)
    assert bad.status_code == 400 and "replay-nonce" not in bad.headers
    missing = client.get(account, client.directory["newOrder"].replace("new-order", "order/acme-ord-none"))
    assert missing.status_code == 404 and "replay-nonce" not in missing.headers
    good = client.new_order(account, names())
    assert good.status_code == 201 and good.headers["replay-nonce"]


def test_no_retry_after_on_429(acme, contract_target):
    certctl_only(contract_target)
    client, _ = acme
    account = client.new_account()
    answers = [client.new_order(account, names()) for _ in range(101)]  # 5 open, then the caps
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) == 96
    details = {problem(r)["detail"] for r in limited}
    assert "request rate limit exceeded; retry later" in details  # the orders/hour bucket ran dry
    assert not [r for r in limited if "retry-after" in r.headers]


def test_csr_mismatch_is_500(acme):
    client, _ = acme
    account = client.new_account()
    url, order = client.order(account, wanted := names())
    r = client.finalize(account, order, [*wanted, "outside-the-order.acme.certload.test"])
    assert (r.status_code, problem(r)) == (500, SERVER_INTERNAL)
    after = client.get(account, url).json()
    assert after["status"] == "invalid"
    assert after["error"] == {
        "type": PREFIX + "badCSR",
        "detail": "CSR identifier count (2) differs from order identifier count (1)",
        "status": 400,
    }


# -- on a certctl whose database has the empty-id rows its finalize needs ------------------------------


@pytest.fixture(scope="module")
def fk_rows(start_session_target, contract_session):
    """(Acme, Trust, target, shared state) on a certctl with owner/team/renewal policy rows of id ''."""
    target = start_session_target("certctl", "acme_fk_rows")
    with target.db() as conn:
        conn.execute("INSERT INTO teams (id, name) VALUES ('', 'contract: empty team id')")
        conn.execute("INSERT INTO owners (id, name, email, team_id) VALUES ('', 'contract', 'e@x.test', '')")
        conn.execute(
            "INSERT INTO renewal_policies (id, name, renewal_window_days) VALUES ('', 'contract', 30)"
        )
    client, trust = acme_for(target, contract_session.workdir / "issuer-ca-fk")
    yield client, trust, target, {}
    client.http.close()


def test_finalize_empty_fingerprint(fk_rows):
    client, trust, target, state = fk_rows
    account = client.new_account()
    url, order, leaf = client.issue(account, trust)  # the first issuance works, chained to our CA
    state.update(account=account, order=order, url=url, leaf=leaf)
    with target.db() as conn:
        assert conn.execute("SELECT fingerprint_sha256 FROM certificate_versions").fetchall() == [("",)]
    second_url, second = client.order(account, wanted := names())
    r = client.finalize(account, second, wanted)
    assert (r.status_code, problem(r)) == (500, SERVER_INTERNAL)
    assert client.get(account, second_url).json()["status"] == "processing"
    with target.db() as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM managed_certificates mc WHERE mc.name = %s"
            " AND NOT EXISTS (SELECT 1 FROM certificate_versions cv WHERE cv.certificate_id = mc.id)",
            ("acme-" + second_url.rsplit("/", 1)[1],),
        ).fetchone()[0]
    assert orphans == 1


def test_refinalize_valid_is_403(fk_rows):
    client, _, _, state = fk_rows
    if "order" not in state:
        pytest.skip("needs the issuance of test_finalize_empty_fingerprint")
    order = state["order"]
    r = client.finalize(state["account"], order, [i["value"] for i in order["identifiers"]])
    assert r.status_code == 403
    assert problem(r)["type"] == PREFIX + "orderNotReady"


def _version(target, serial_hex: str) -> None:
    """A certificate of iss-local with one version of ``serial_hex`` (40 digits), inserted in SQL."""
    cert_id = "mc-contract-" + secrets.token_hex(4)
    with target.db() as conn:
        conn.execute(
            "INSERT INTO managed_certificates (id, name, common_name, environment, owner_id, team_id,"
            " issuer_id, renewal_policy_id, status, expires_at) VALUES (%s, %s, 'ari.contract.test', '',"
            " 'o-alice', 't-platform', 'iss-local', 'rp-standard', 'Active', now() + interval '60 days')",
            (cert_id, cert_id),
        )
        conn.execute(
            "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,"
            " fingerprint_sha256, pem_chain) VALUES (%s, %s, %s, now() - interval '30 days',"
            " now() + interval '60 days', %s, 'x')",
            (secrets.token_hex(8), cert_id, serial_hex, secrets.token_hex(32)),
        )


def test_ari_serial_leading_zero(fk_rows):
    client, _, target, state = fk_rows
    aki = ari_cert_id(state["leaf"]).split(".")[0] if "leaf" in state else "AAAA"
    low, high = "0" + secrets.token_hex(20)[1:], "7" + secrets.token_hex(20)[1:]
    _version(target, low)
    _version(target, high)
    assert client.renewal_info(cert_id_for(aki, int(high, 16))).status_code == 200
    r = client.renewal_info(cert_id_for(aki, int(low, 16)))
    assert (r.status_code, problem(r)["detail"]) == (404, "resource not found")
    state["high"] = cert_id_for(aki, int(high, 16))


def test_issuer_from_go_map(fk_rows):
    """Last on this server: a second enabled issuer makes every ARI lookup pick one at random."""
    client, _, _, state = fk_rows
    if "high" not in state:
        pytest.skip("needs the version inserted by test_ari_serial_leading_zero")
    body = {
        "name": "contract second CA",
        "type": "GenericCA",
        "config": {"ca_common_name": "second"},
        "enabled": True,
    }
    created = client.http.post("/api/v1/issuers", json=body)
    assert created.status_code == 201, created.text
    statuses = {client.renewal_info(state["high"]).status_code for _ in range(100)}
    assert statuses == {200, 404}, f"100 ARI lookups with two issuers answered only {statuses}"
