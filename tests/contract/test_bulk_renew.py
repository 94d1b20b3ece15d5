"""POST /api/v1/certificates/bulk-renew: criteria cap, skips, job rows, response envelope."""

from __future__ import annotations

import pytest

ENVELOPE = ["total_matched", "total_enqueued", "total_skipped", "total_failed"]


def seed_certs(
    db,
    team_id: str,
    owner_id: str,
    n: int,
    status: str = "Active",
    expires: str = "now() + interval '20 days'",
):
    """n certificates of the team, created one second apart (oldest first), via SQL like the load seeds."""
    prefix = f"{team_id}-c"
    db.execute(
        f"""INSERT INTO managed_certificates (id, name, common_name, sans, environment, owner_id,
                team_id, issuer_id, renewal_policy_id, status, expires_at, created_at, updated_at)
            SELECT %(p)s || lpad(g::text, 3, '0'), %(p)s || g || '.example.test',
                   %(p)s || g || '.example.test', ARRAY[%(p)s || g || '.example.test'], 'loadtest',
                   %(o)s, %(t)s, 'iss-local', 'rp-standard', %(s)s, {expires},
                   now() - interval '1 day' + g * interval '1 second', now()
            FROM generate_series(1, %(n)s) g""",
        {"p": prefix, "o": owner_id, "t": team_id, "s": status, "n": n},
    )
    return [f"{prefix}{g:03d}" for g in range(1, n + 1)]


def test_empty_criteria_is_400(api):
    r = api.post("/api/v1/certificates/bulk-renew", json={})
    assert r.status_code == 400
    assert r.json()["message"] == (
        "At least one filter criterion is required (profile_id, owner_id, agent_id, issuer_id, team_id, "
        "or certificate_ids)"
    )


@pytest.mark.parametrize("content", [b"{bad", b"", b'{"team_id": 1}', b'{"certificate_ids": "x"}'])
def test_bad_body_is_400(api, content):
    r = api.post("/api/v1/certificates/bulk-renew", content=content)
    assert r.status_code == 400
    assert r.json()["message"] == "Invalid request body"


def test_criteria_mode_takes_the_50_oldest(api, db, team):
    team_id, owner_id = team
    ids = seed_certs(db, team_id, owner_id, 60)
    r = api.post("/api/v1/certificates/bulk-renew", json={"team_id": team_id, "issuer_id": "iss-local"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == [*ENVELOPE, "enqueued_jobs"]
    assert body["total_matched"] == 50
    assert body["total_enqueued"] == 50
    assert body["total_skipped"] == 0 and body["total_failed"] == 0
    assert [j["certificate_id"] for j in body["enqueued_jobs"]] == ids[:50]
    flipped = {
        r[0]
        for r in db.execute(
            "SELECT id FROM managed_certificates WHERE team_id = %s AND status = 'RenewalInProgress'",
            (team_id,),
        )
    }
    assert flipped == set(ids[:50])
    jobs = db.execute(
        "SELECT j.id, j.type, j.status, j.max_attempts, j.attempts FROM jobs j"
        " JOIN managed_certificates c ON c.id = j.certificate_id WHERE c.team_id = %s",
        (team_id,),
    ).fetchall()
    assert len(jobs) == 50
    assert {(t, s, m, a) for _, t, s, m, a in jobs} == {("Renewal", "AwaitingCSR", 3, 0)}
    assert {j[0] for j in jobs} == {j["job_id"] for j in body["enqueued_jobs"]}
    assert all(j["job_id"].startswith("job-") for j in body["enqueued_jobs"])

    again = api.post(
        "/api/v1/certificates/bulk-renew", json={"team_id": team_id, "issuer_id": "iss-local"}
    ).json()
    assert again == {"total_matched": 50, "total_enqueued": 0, "total_skipped": 50, "total_failed": 0}


def test_skipped_statuses_and_issuance_jobs(api, db, team):
    team_id, owner_id = team
    rows = seed_certs(db, team_id, owner_id, 6)
    for cert_id, status in zip(rows, ("Archived", "Revoked", "Expired", "RenewalInProgress"), strict=False):
        db.execute("UPDATE managed_certificates SET status = %s WHERE id = %s", (status, cert_id))
    db.execute(
        "UPDATE managed_certificates SET expires_at = '0001-01-01T00:00:00Z' WHERE id = %s", (rows[5],)
    )
    body = api.post("/api/v1/certificates/bulk-renew", json={"owner_id": owner_id}).json()
    assert body["total_matched"] == 6
    assert body["total_skipped"] == 4
    assert body["total_enqueued"] == 2
    types = dict(
        db.execute(
            "SELECT certificate_id, type FROM jobs WHERE certificate_id = ANY(%s)", (rows[4:],)
        ).fetchall()
    )
    assert types == {rows[4]: "Renewal", rows[5]: "Issuance"}


def test_explicit_ids(api, db, team):
    team_id, owner_id = team
    rows = seed_certs(db, team_id, owner_id, 3)
    body = api.post(
        "/api/v1/certificates/bulk-renew", json={"certificate_ids": [rows[1], "no-such-cert"]}
    ).json()
    assert body["total_matched"] == 1
    assert body["enqueued_jobs"] == [
        {"certificate_id": rows[1], "job_id": body["enqueued_jobs"][0]["job_id"]}
    ]


def test_explicit_ids_have_no_cap_and_wait_for_the_agents_csr(api, db, team):
    """certificate_ids alone: every id looked up (no 50-row cap, bulk_renewal.go:184-194), one
    AwaitingCSR job each (agent keygen mode, bulk_renewal.go:123-139) with no agent or target."""
    team_id, owner_id = team
    rows = seed_certs(db, team_id, owner_id, 120, expires="now() + interval '60 days'")
    body = api.post("/api/v1/certificates/bulk-renew", json={"certificate_ids": rows}).json()
    assert (body["total_matched"], body["total_enqueued"]) == (120, 120)
    assert [j["certificate_id"] for j in body["enqueued_jobs"]] == rows
    shapes = db.execute(
        "SELECT type, status, agent_id, target_id, attempts, max_attempts, scheduled_at IS NOT NULL, count(*)"
        " FROM jobs WHERE certificate_id = ANY(%s) GROUP BY 1, 2, 3, 4, 5, 6, 7",
        (rows,),
    ).fetchall()
    assert shapes == [("Renewal", "AwaitingCSR", None, None, 0, 3, True, 120)]
    assert db.execute(
        "SELECT array_agg(DISTINCT status) FROM managed_certificates WHERE id = ANY(%s)", (rows,)
    ).fetchone()[0] == ["RenewalInProgress"]


def test_nothing_matched_omits_lists(api):
    body = api.post("/api/v1/certificates/bulk-renew", json={"certificate_ids": ["no-such-cert"]}).json()
    assert body == {"total_matched": 0, "total_enqueued": 0, "total_skipped": 0, "total_failed": 0}


def test_get_on_bulk_renew_is_a_certificate_lookup(api):
    r = api.get("/api/v1/certificates/bulk-renew")
    assert r.status_code == 404
    assert r.json()["message"] == "Certificate not found"
