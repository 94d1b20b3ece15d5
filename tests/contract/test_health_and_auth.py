"""Health probes, authentication, routing errors and headers every response carries."""

from __future__ import annotations

import re
import socket
import ssl

import pytest

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TEXT = "text/plain; charset=utf-8"


def test_health_is_unauthenticated(anon):
    r = anon.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "healthy"}
    assert r.headers["content-type"] == "application/json"


def test_ready_pings_the_database(anon):
    r = anon.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"db": "reachable", "status": "ready"}


def test_health_rejects_other_methods(anon):
    r = anon.post("/health")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


def test_healthz_is_not_a_route(anon, api):
    assert anon.get("/healthz").status_code == 401  # falls through to the authenticated chain
    assert api.get("/healthz").status_code == 404


def test_every_response_has_a_fresh_request_id(anon, api):
    seen = set()
    for r in (
        anon.get("/health"),
        anon.get("/api/v1/certificates"),
        api.get("/nope"),
        api.get("/api/v1/certificates"),
    ):
        rid = r.headers["x-request-id"]
        assert UUID.match(rid), rid
        seen.add(rid)
    assert len(seen) == 4


def test_client_request_id_is_ignored(api):
    r = api.get("/api/v1/certificates?per_page=1", headers={"X-Request-ID": "mine"})
    assert r.headers["x-request-id"] != "mine"


def test_server_header_labels_the_stand_in(anon, contract_target):
    server = anon.get("/health").headers.get("server")
    if contract_target.flavour == "stand-in":
        assert server == "certctl-stand-in (pytest-certload test double)"
    else:
        assert server is None


def test_security_headers(anon):
    r = anon.get("/api/v1/certificates")
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_missing_authorization(anon):
    r = anon.get("/api/v1/certificates")
    assert r.status_code == 401
    assert r.headers["content-type"] == TEXT
    assert r.headers["www-authenticate"] == 'Bearer realm="certctl"'
    assert r.text == '{"error":"Authorization header required"}\n'


@pytest.mark.parametrize("header", ["Basic abc", "bearer tok", "Bearer", "Token abcdefgh"])
def test_wrong_scheme(anon, header):
    r = anon.get("/api/v1/certificates", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["content-type"] == TEXT
    assert "www-authenticate" not in r.headers
    assert r.text == '{"error":"Invalid Authorization header format, expected: Bearer <token>"}\n'


def test_unknown_key(anon):
    r = anon.get("/api/v1/certificates", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401
    assert r.headers["content-type"] == TEXT
    assert r.text == '{"error":"Invalid API key"}\n'


@pytest.mark.parametrize("path", ["/api/v1/nonexistent", "/nonexistent", "/api/v2/certificates"])
def test_unknown_route(anon, api, path):
    assert anon.get(path).status_code == 401
    r = api.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == TEXT
    assert r.text == "404 page not found\n"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/v1/certificates", "GET, HEAD, POST"),
        ("PUT", "/api/v1/certificates", "GET, HEAD, POST"),
        ("GET", "/api/v1/agents/ag-web-prod/heartbeat", "POST"),
        ("POST", "/api/v1/agents/ag-web-prod/work", "GET, HEAD"),
        ("POST", "/acme/profile/prof-test/directory", "GET, HEAD"),
        ("POST", "/acme/profile/prof-test/new-nonce", "GET, HEAD"),
    ],
)
def test_wrong_method(api, method, path, allow):
    r = api.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.text == "Method Not Allowed\n"


def test_tls_12_is_refused(contract_target):
    host, port = contract_target.base_url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((host, int(port)), timeout=5) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname=host).close()


def test_tls_13_is_negotiated(contract_target):
    host, port = contract_target.base_url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        contract_target.ssl_context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.3"


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_head_on_probes_is_405(anon, path):
    r = anon.head(path)
    assert r.status_code == 405
    assert r.headers["content-type"] == TEXT


def test_head_on_list_is_405_json(api):
    r = api.head("/api/v1/certificates")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"


def test_options_preflight_needs_no_auth(anon):
    r = anon.options("/api/v1/certificates")
    assert r.status_code == 204


def test_unclean_path_redirects(api):
    r = api.get("/api/v1/agents//heartbeat")
    assert r.status_code == 307
    assert r.headers["location"] == "/api/v1/agents/heartbeat"
