"""The agent work loop end to end: work poll, CSR submit, certificate pickup, job status, verify.

Each test runs against the stand-in and the real certctl (skipped without a binary) and checks the
status code, the body and the rows the call leaves (service audit rows included). certctl's
defects on this path are pinned in test_agent_divergences.py.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.contract.agent_helpers import awaiting_job, csr_pem, job_row, verify_body
from tests.contract.conftest import unique

FAILED_CSR = {"error": "Internal Server Error", "message": "Failed to submit CSR"}


def test_renewal_round_trip(api, db, bound):
    """bulk-renew -> poll (AwaitingCSR, again) -> CSR -> poll (Deployment) -> pickup -> status."""
    agent_id, target_id, cert = bound()
    r = api.post("/api/v1/certificates/bulk-renew", json={"certificate_ids": [cert["id"]]})
    assert r.status_code == 200, r.text
    [enqueued] = r.json()["enqueued_jobs"]
    job_id = enqueued["job_id"]
    assert db.execute(
        "SELECT type, status, agent_id, target_id, attempts, scheduled_at IS NOT NULL FROM jobs"
        " WHERE id = %s",
        (job_id,),
    ).fetchone() == ("Renewal", "AwaitingCSR", None, None, 0, True)
    want = {"id": job_id, "type": "Renewal", "certificate_id": cert["id"], "common_name": cert["common_name"],
            "sans": cert["sans"], "status": "AwaitingCSR"}  # fmt: skip
    for _ in range(2):  # re-delivered on every poll until a CSR arrives
        assert api.get(f"/api/v1/agents/{agent_id}/work").json() == {"count": 1, "jobs": [want]}

    csr = csr_pem(cert["common_name"], cert["sans"])
    r = api.post(f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": csr, "certificate_id": cert["id"]})
    assert (r.status_code, r.json()) == (202, {"status": "csr_signed"})
    assert job_row(db, job_id)[:3] == ("Completed", None, 0)
    serial, pem_chain, stored_csr, fingerprint, algorithm, size, not_after = db.execute(
        "SELECT serial_number, pem_chain, csr_pem, fingerprint_sha256, key_algorithm, key_size, not_after"
        " FROM certificate_versions WHERE certificate_id = %s",
        (cert["id"],),
    ).fetchone()
    leaf = x509.load_pem_x509_certificate(pem_chain.encode())
    chain = x509.load_pem_x509_certificates(pem_chain.encode())
    assert len(chain) >= 2 and pem_chain.startswith(leaf.public_bytes(serialization.Encoding.PEM).decode())
    leaf.verify_directly_issued_by(chain[1])
    assert fingerprint == hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert (stored_csr, algorithm, size) == (csr, "ECDSA", 256)
    assert serial == f"{leaf.serial_number:040x}" and not_after == leaf.not_valid_after_utc
    status, expires_at, renewed = db.execute(
        "SELECT status, expires_at, last_renewal_at FROM managed_certificates WHERE id = %s", (cert["id"],)
    ).fetchone()
    assert (status, expires_at) == ("Active", not_after) and renewed is not None
    assert 89 * 86400 < (not_after - renewed).total_seconds() <= 90 * 86400 + 60
    [(deploy_id, deploy_status, deploy_agent)] = db.execute(
        "SELECT id, status, agent_id FROM jobs WHERE certificate_id = %s AND type = 'Deployment'"
        " AND target_id = %s",
        (cert["id"], target_id),
    ).fetchall()
    assert (deploy_status, deploy_agent) == ("Pending", agent_id)
    assert db.execute(
        "SELECT type, channel, recipient, status, sent_at IS NOT NULL FROM notification_events"
        " WHERE certificate_id = %s",
        (cert["id"],),
    ).fetchall() == [("RenewalSuccess", "Email", "alice@example.com", "sent", True)]

    body = api.get(f"/api/v1/agents/{agent_id}/work").json()
    assert body == {"count": 1, "jobs": [{
        "id": deploy_id, "type": "Deployment", "certificate_id": cert["id"], "target_id": target_id,
        "target_type": "NGINX", "target_config": {"cert_path": "/tmp/c.pem", "key_path": "/tmp/k.pem"},
        "status": "Running",
    }]}  # fmt: skip
    r = api.get(f"/api/v1/agents/{agent_id}/certificates/{cert['id']}")
    assert (r.status_code, r.json()) == (200, {"certificate_pem": pem_chain})
    for reported in ("Running", "Completed"):
        r = api.post(f"/api/v1/agents/{agent_id}/jobs/{deploy_id}/status", json={"status": reported})
        assert (r.status_code, r.json()) == (200, {"status": "updated"})
    assert job_row(db, deploy_id) == ("Completed", None, 0, None, None)  # timestamps untouched
    service_rows = db.execute(
        "SELECT action, resource_id FROM audit_events WHERE action IN ('renewal_job_completed',"
        " 'csr_submitted', 'certificate_retrieved', 'job_status_reported') AND resource_id IN (%s, %s)"
        " ORDER BY timestamp",
        (cert["id"], deploy_id),
    ).fetchall()
    assert [a for a, _ in service_rows] == [
        "renewal_job_completed", "csr_submitted", "certificate_retrieved", "job_status_reported",
        "job_status_reported",
    ]  # fmt: skip
    assert api.get(f"/api/v1/agents/{agent_id}/work").json() == {"count": 0, "jobs": []}


def test_csr_completes_the_newest_awaiting_job(api, db, bound):
    agent_id, _, cert = bound()
    older, newer = awaiting_job(db, cert["id"], age_s=60), awaiting_job(db, cert["id"])
    csr = csr_pem(cert["common_name"], [])
    r = api.post(f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": csr, "certificate_id": cert["id"]})
    assert r.status_code == 202
    assert (job_row(db, newer)[0], job_row(db, older)[0]) == ("Completed", "AwaitingCSR")


def test_csr_without_awaiting_job_signs_directly(api, db, bound):
    """agent.go:181-244: a version and an Active certificate, no job change, no deployment job."""
    agent_id, _, cert = bound()
    csr = csr_pem(cert["common_name"], [])
    r = api.post(f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": csr, "certificate_id": cert["id"]})
    assert (r.status_code, r.json()) == (202, {"status": "csr_signed"})
    assert db.execute("SELECT count(*) FROM certificate_versions WHERE certificate_id = %s", (cert["id"],)
                      ).fetchone()[0] == 1  # fmt: skip
    assert db.execute("SELECT status FROM managed_certificates WHERE id = %s", (cert["id"],)).fetchone()[
        0
    ] == ("Active")
    assert db.execute("SELECT count(*) FROM jobs WHERE certificate_id = %s", (cert["id"],)).fetchone()[0] == 0


def test_csr_with_an_ed25519_key_is_signed(api, db, bound):
    """certctl signs an Ed25519 CSR (its SKI hash has no Ed25519 case: local.go:1047-1065)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    agent_id, _, cert = bound()
    job = awaiting_job(db, cert["id"])
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cert["common_name"])])
    request = x509.CertificateSigningRequestBuilder().subject_name(name)
    csr = request.sign(ed25519.Ed25519PrivateKey.generate(), None).public_bytes(serialization.Encoding.PEM)
    r = api.post(
        f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": csr.decode(), "certificate_id": cert["id"]}
    )
    assert r.status_code == 202, r.text
    assert job_row(db, job)[0] == "Completed"


def test_csr_without_certificate_id_is_only_accepted(api, db, agent):
    r = api.post(f"/api/v1/agents/{agent()}/csr", json={"csr_pem": csr_pem("x.example.test", [])})
    assert (r.status_code, r.json()) == (202, {"status": "csr_accepted"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Invalid request body"),
        (b'{"csr_pem": 5}', "Invalid request body"),
        (b'{"certificate_id": "x"}', "csr_pem is required"),
        (b'{"csr_pem": "hello"}', "csr_pem must be a valid PEM-encoded certificate request"),
    ],
)
def test_csr_bad_body_is_400(api, agent, content, message):
    r = api.post(f"/api/v1/agents/{agent()}/csr", content=content)
    assert r.status_code == 400
    assert r.json()["message"] == message


def test_csr_service_errors_are_500(api, db, bound):
    agent_id, _, cert = bound()
    good = csr_pem(cert["common_name"], [])
    unknown_agent = api.post(
        "/api/v1/agents/ag-nobody/csr", json={"csr_pem": good, "certificate_id": cert["id"]}
    )
    unknown_cert = api.post(
        f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": good, "certificate_id": "mc-none"}
    )
    job_id = awaiting_job(db, cert["id"])
    garbage = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    bad_csr = api.post(
        f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": garbage, "certificate_id": cert["id"]}
    )
    for r in (unknown_agent, unknown_cert, bad_csr):
        assert r.status_code == 500
        assert {k: r.json()[k] for k in FAILED_CSR} == FAILED_CSR
    status, last_error, _, _, _ = job_row(db, job_id)
    assert status == "Failed" and last_error.startswith("CSR validation failed")


def test_csr_against_profile_key_rules(api, db, bound):
    profile_id = unique("prof-rsa-only")
    db.execute(
        "INSERT INTO certificate_profiles (id, name, allowed_key_algorithms) VALUES (%s, %s, %s)",
        (profile_id, profile_id, '[{"algorithm": "RSA", "min_size": 2048}]'),
    )
    agent_id, _, cert = bound(certificate_profile_id=profile_id)
    job_id = awaiting_job(db, cert["id"])
    csr = csr_pem(cert["common_name"], [])
    r = api.post(f"/api/v1/agents/{agent_id}/csr", json={"csr_pem": csr, "certificate_id": cert["id"]})
    assert r.status_code == 500
    status, last_error, *_ = job_row(db, job_id)
    assert status == "Failed" and "ECDSA 256-bit" in last_error


def test_pickup_errors_are_404(api, bound):
    agent_id, _, cert = bound()
    for path in (f"/api/v1/agents/{agent_id}/certificates/{cert['id']}",  # no version yet
                 f"/api/v1/agents/ag-nobody/certificates/{cert['id']}"):  # fmt: skip
        r = api.get(path)
        assert r.status_code == 404
        assert r.json()["message"] == "Certificate not found or not ready"


def test_pickup_returns_the_newest_version(api, db, bound):
    agent_id, _, cert = bound()
    for n, age in ((1, 120), (2, 0), (3, 60)):
        db.execute(
            "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,"
            " fingerprint_sha256, pem_chain, created_at) VALUES (%s, %s, %s, now(), now() + interval '1 day',"
            " %s, %s, now() - %s * interval '1 second')",
            (unique("cv"), cert["id"], str(n), unique("fp"), f"pem-{n}", age),
        )
    r = api.get(f"/api/v1/agents/{agent_id}/certificates/{cert['id']}")
    assert (r.status_code, r.json()) == (200, {"certificate_pem": "pem-2"})


def test_job_status_is_stored_verbatim(api, db, bound):
    _, _, cert = bound()
    job_id = awaiting_job(db, cert["id"])
    # no agent check: any agent id in the path reports for any job
    r = api.post(
        f"/api/v1/agents/ag-nobody/jobs/{job_id}/status", json={"status": "Whatever", "error": "boom"}
    )
    assert (r.status_code, r.json()) == (200, {"status": "updated"})
    assert job_row(db, job_id) == ("Whatever", "boom", 0, None, None)
    r = api.post(f"/api/v1/agents/ag-nobody/jobs/{job_id}/status", json={"status": "Failed", "error": ""})
    assert r.status_code == 200 and job_row(db, job_id)[:3] == ("Failed", None, 0)


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"", 400, "Invalid request body"),
        (b'{"status": 1}', 400, "Invalid request body"),
        (b'{"error": "x"}', 400, "Status is required"),
        (b'{"status": "Completed"}', 500, "Failed to update job status"),  # unknown job
    ],
)
def test_job_status_errors(api, agent, content, status, message):
    r = api.post(f"/api/v1/agents/{agent()}/jobs/job-none/status", content=content)
    assert r.status_code == status
    assert r.json()["message"] == message


def test_work_poll_has_no_limit_and_reaches_every_mapped_agent(api, db, bound):
    agent_a, _, cert = bound()
    agent_b, target_b, _ = bound()
    db.execute("INSERT INTO certificate_target_mappings VALUES (%s, %s)", (cert["id"], target_b))
    jobs = [awaiting_job(db, cert["id"], age_s=300 - k) for k in range(120)]
    for agent_id in (agent_a, agent_b):
        body = api.get(f"/api/v1/agents/{agent_id}/work").json()
        assert body["count"] == 120 and [j["id"] for j in body["jobs"]] == jobs


def test_unknown_and_null_target_id(api, db, agent, cert_body):
    """A deployment job whose target is gone still goes out; target_type/config are just missing."""
    agent_id = agent()
    cert = api.post("/api/v1/certificates", json=cert_body()).json()
    job_id = unique("job-contract")
    db.execute(
        "INSERT INTO jobs (id, type, certificate_id, agent_id, status, scheduled_at) VALUES"
        " (%s, 'Deployment', %s, %s, 'Pending', now())",
        (job_id, cert["id"], agent_id),
    )
    body = api.get(f"/api/v1/agents/{agent_id}/work").json()
    assert body["jobs"] == [
        {"id": job_id, "type": "Deployment", "certificate_id": cert["id"], "status": "Running"}
    ]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (None, 400, "Invalid request body"),
        (verify_body(verified=0), 400, "Invalid request body"),  # Go: a number is no bool, even 0
        (verify_body(target_id=""), 400, "target_id is required"),
        (verify_body(expected_fingerprint=""), 400, "expected_fingerprint is required"),
        (verify_body(actual_fingerprint=""), 400, "actual_fingerprint is required"),
        (verify_body(), 500, "Failed to record verification result: failed to fetch job for verification"),
    ],
)
def test_verify_errors(api, body, status, message):
    r = api.post("/api/v1/jobs/job-none/verify", **({"json": body} if body is not None else {"content": b""}))
    assert r.status_code == status
    assert r.json()["message"].startswith(message)
