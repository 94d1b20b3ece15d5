"""POST and GET /api/v1/certificates: validation, stored rows, paging, ordering, ETag."""

from __future__ import annotations

import hashlib

import pytest

CREATE_FIELDS = [
    "id", "name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id", "target_ids",
    "renewal_policy_id", "status", "expires_at", "tags", "created_at", "updated_at",
]  # fmt: skip
REQUIRED = ["common_name", "owner_id", "team_id", "issuer_id", "name", "renewal_policy_id"]


def error_message(r) -> str:
    body = r.json()
    assert set(body) == {"error", "message", "request_id"}
    assert body["request_id"] == r.headers["x-request-id"]
    return body["message"]


def test_create_returns_stored_object(api, db, cert_body):
    body = cert_body()
    r = api.post("/api/v1/certificates", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    got = r.json()
    assert list(got) == CREATE_FIELDS
    assert got["id"].startswith("cert-")
    assert got["status"] == "Pending"
    assert got["expires_at"] == "0001-01-01T00:00:00Z"
    assert got["tags"] == {}
    assert got["target_ids"] is None
    for key in ("name", "common_name", "sans", "environment", "owner_id", "team_id", "issuer_id"):
        assert got[key] == body[key]
    row = db.execute(
        "SELECT name, common_name, sans, environment, status, expires_at, tags, source"
        " FROM managed_certificates WHERE id = %s",
        (got["id"],),
    ).fetchone()
    assert row is not None
    name, cn, sans, env, status, expires_at, tags, source = row
    assert (name, cn, sans, env, status, tags, source) == (
        body["name"],
        body["name"],
        body["sans"],
        "production",
        "Pending",
        {},
        "",
    )
    assert expires_at.year == 1


def test_create_keeps_client_fields(api, db, cert_body):
    cert_id = "mc-contract-" + cert_body()["name"].split(".")[0]
    body = cert_body(
        id=cert_id,
        status="Active",
        expires_at="2030-01-02T03:04:05Z",
        tags={"k": "v"},
        target_ids=["tgt-x"],
        certificate_profile_id="prof-test",
    )
    r = api.post("/api/v1/certificates", json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["id"] == cert_id
    assert got["status"] == "Active"
    assert got["expires_at"] == "2030-01-02T03:04:05Z"
    assert got["tags"] == {"k": "v"}
    assert got["target_ids"] == ["tgt-x"]  # echoed, never stored
    assert got["certificate_profile_id"] == "prof-test"
    assert (
        db.execute(
            "SELECT count(*) FROM certificate_target_mappings WHERE certificate_id = %s", (cert_id,)
        ).fetchone()[0]
        == 0
    )


@pytest.mark.parametrize("missing", REQUIRED)
def test_required_fields(api, cert_body, missing):
    r = api.post("/api/v1/certificates", json=cert_body(**{missing: ...}))
    assert r.status_code == 400
    assert error_message(r) == f"{missing} is required"


def test_required_fields_are_checked_in_certctl_order(api):
    r = api.post("/api/v1/certificates", json={"common_name": "a.example.test"})
    assert error_message(r) == "owner_id is required"


@pytest.mark.parametrize(
    ("cn", "message"),
    [
        ("a b.example", "invalid hostname format: hostname contains invalid character:  "),
        ("bad..example", "invalid hostname format: hostname has empty label"),
        ("-bad.example", "invalid hostname format: hostname labels cannot start or end with hyphen"),
        ("x" * 254, "common_name must be 253 characters or fewer"),
        ("x@", "invalid email format for S/MIME common name: mail: missing '@' or angle-addr"),
    ],
)
def test_common_name_validation(api, cert_body, cn, message):
    r = api.post("/api/v1/certificates", json=cert_body(common_name=cn))
    assert r.status_code == 400
    assert error_message(r) == message


@pytest.mark.parametrize(
    "cn", ["*.example.test", "10.0.0.1", "::1", "under_score.example", "user@example.com"]
)
def test_common_name_accepted(api, cert_body, cn):
    assert api.post("/api/v1/certificates", json=cert_body(common_name=cn)).status_code == 201


def test_duplicate_name_is_500(api, db, cert_body):
    body = cert_body()
    assert api.post("/api/v1/certificates", json=body).status_code == 201
    r = api.post("/api/v1/certificates", json=body)
    assert r.status_code == 500
    assert error_message(r) == "Failed to create certificate"
    assert (
        db.execute("SELECT count(*) FROM managed_certificates WHERE name = %s", (body["name"],)).fetchone()[0]
        == 1
    )


@pytest.mark.parametrize(
    "fk", ["owner_id", "team_id", "issuer_id", "renewal_policy_id", "certificate_profile_id"]
)
def test_unknown_foreign_key_is_500(api, db, cert_body, fk):
    body = cert_body(**{fk: "does-not-exist"})
    r = api.post("/api/v1/certificates", json=body)
    assert r.status_code == 500
    assert error_message(r) == "Failed to create certificate"
    assert (
        db.execute("SELECT count(*) FROM managed_certificates WHERE name = %s", (body["name"],)).fetchone()[0]
        == 0
    )


@pytest.mark.parametrize(
    "content",
    [b"{bad", b"", b"[1]", b'{"common_name": 5}', b'{"sans": "x"}', b'{"tags": {"a": 1}}', b'"str"',
     b'{"expires_at": "tomorrow"}', b"\xff\xfe", b"x" * (1024 * 1024 + 10)],
    ids=["malformed", "empty", "array", "int-cn", "sans-string", "tag-int", "string", "bad-time", "binary",
         "oversize"],
)  # fmt: skip
def test_bad_bodies_are_400(api, content):
    r = api.post("/api/v1/certificates", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert error_message(r) == "Invalid request body"


def test_only_the_first_json_value_is_read(api, cert_body):
    import json

    r = api.post("/api/v1/certificates", content=json.dumps(cert_body()).encode() + b" trailing garbage")
    assert r.status_code == 201


def test_null_body_is_an_empty_struct(api):
    r = api.post("/api/v1/certificates", content=b"null")
    assert r.status_code == 400
    assert error_message(r) == "common_name is required"


def test_get_one(api, cert_body):
    created = api.post("/api/v1/certificates", json=cert_body()).json()
    r = api.get(f"/api/v1/certificates/{created['id']}")
    assert r.status_code == 200
    got = r.json()
    assert got["id"] == created["id"]
    assert got["target_ids"] == []
    r = api.get("/api/v1/certificates/cert-does-not-exist")
    assert r.status_code == 404
    assert error_message(r) == "Certificate not found"


# ----------------------------------------------------------------- list


def test_list_shape_and_total(api, db, cert_body):
    api.post("/api/v1/certificates", json=cert_body())
    r = api.get("/api/v1/certificates?per_page=5")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["data", "total", "page", "per_page"]
    assert body["page"] == 1 and body["per_page"] == 5
    assert 1 <= len(body["data"]) <= 5
    assert body["total"] == db.execute("SELECT count(*) FROM managed_certificates").fetchone()[0]
    assert all(isinstance(item["target_ids"], list) for item in body["data"])


@pytest.mark.parametrize(
    ("query", "per_page"),
    [("per_page=500", 500), ("per_page=501", 50), ("per_page=0", 50), ("per_page=-3", 50), ("per_page=x", 50),
     ("", 50), ("per_page=7", 7)],
)  # fmt: skip
def test_per_page_cap_and_fallback(api, query, per_page):
    body = api.get(f"/api/v1/certificates?{query}").json()
    assert body["per_page"] == per_page
    assert len(body["data"] or []) <= per_page


def test_default_order_is_oldest_first(api, db, team, cert_body):
    team_id, owner_id = team
    ids = [api.post("/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id)).json()["id"]
           for _ in range(3)]  # fmt: skip
    got = api.get(f"/api/v1/certificates?team_id={team_id}").json()
    assert [c["id"] for c in got["data"]] == ids
    desc = api.get(f"/api/v1/certificates?team_id={team_id}&sort=-createdAt").json()
    assert [c["id"] for c in desc["data"]] == ids[::-1]
    global_first = api.get("/api/v1/certificates?per_page=1").json()["data"][0]
    oldest = db.execute("SELECT id FROM managed_certificates ORDER BY created_at ASC LIMIT 1").fetchone()[0]
    assert global_first["id"] == oldest


def test_paging_walks_without_overlap(api, team, cert_body):
    team_id, owner_id = team
    ids = {api.post("/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id)).json()["id"]
           for _ in range(5)}  # fmt: skip
    pages = [api.get(f"/api/v1/certificates?team_id={team_id}&per_page=2&page={p}").json() for p in (1, 2, 3)]
    seen = [c["id"] for page in pages for c in page["data"]]
    assert sorted(seen) == sorted(ids)
    assert all(page["total"] == 5 for page in pages)


def test_empty_result_is_an_empty_list(api):
    body = api.get("/api/v1/certificates?team_id=no-such-team").json()
    assert body == {"data": [], "total": 0, "page": 1, "per_page": 50}
    sparse = api.get("/api/v1/certificates?team_id=no-such-team&fields=id").json()
    assert sparse["data"] == []


def test_sparse_fields(api, cert_body):
    api.post("/api/v1/certificates", json=cert_body())
    body = api.get("/api/v1/certificates?per_page=3&fields=id,status").json()
    assert body["data"] and all(set(item) == {"id", "status"} for item in body["data"])


def test_list_etag_and_304(api):
    r = api.get("/api/v1/certificates?per_page=2")
    etag = r.headers["etag"]
    assert etag == '"' + hashlib.sha256(r.content).hexdigest() + '"'
    again = api.get("/api/v1/certificates?per_page=2", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_list_filters(api, team, cert_body):
    team_id, owner_id = team
    staging = api.post(
        "/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id, environment="staging")
    ).json()
    api.post("/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id))
    got = api.get(f"/api/v1/certificates?team_id={team_id}&environment=staging").json()
    assert [c["id"] for c in got["data"]] == [staging["id"]]
    assert got["total"] == 1


def test_list_500_on_unscannable_row(api, db, team, cert_body):
    """certctl cannot scan NULL environment: a seed that leaves it NULL breaks the whole list."""
    team_id, owner_id = team
    created = api.post("/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id)).json()
    db.execute("UPDATE managed_certificates SET environment = NULL WHERE id = %s", (created["id"],))
    try:
        r = api.get(f"/api/v1/certificates?team_id={team_id}")
        assert r.status_code == 500
        assert error_message(r) == "Failed to list certificates"
    finally:
        db.execute(
            "UPDATE managed_certificates SET environment = 'production' WHERE id = %s", (created["id"],)
        )


def test_cursor_mode_shape_and_certctl_cursor_bug(api, team, cert_body):
    """certctl decodes its own cursors by splitting at the first ':' (inside the RFC 3339 time),
    so a next_cursor handed back is ignored and the walk returns the same first page again."""
    team_id, owner_id = team
    for _ in range(3):
        api.post("/api/v1/certificates", json=cert_body(team_id=team_id, owner_id=owner_id))
    first = api.get(f"/api/v1/certificates?team_id={team_id}&cursor=start&page_size=2").json()
    assert list(first) == ["data", "total", "next_cursor", "page_size"]
    assert first["total"] == 3 and first["page_size"] == 2 and len(first["data"]) == 2
    again = api.get(
        f"/api/v1/certificates?team_id={team_id}&cursor={first['next_cursor']}&page_size=2"
    ).json()
    assert [c["id"] for c in again["data"]] == [c["id"] for c in first["data"]]
    paged = api.get(f"/api/v1/certificates?team_id={team_id}&cursor=x&page=2&per_page=2").json()
    assert [c["id"] for c in paged["data"]] == [c["id"] for c in first["data"]]  # page ignored
