"""What a simulated agent sends, checked field by field against certctl's agent (cmd/agent/*.go)."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from pytest_certload.agents.csr_job import build_csr, new_key
from pytest_certload.agents.deploy_job import leaf_fingerprint, split_pem_chain
from pytest_certload.agents.model import AgentIdentity, key_name_error
from pytest_certload.agents.protocol import AgentProtocol, go_json
from pytest_certload.stack.model import Stack


def test_key_is_p256_stored_as_sec1_ec_private_key() -> None:
    key, pem = new_key()
    assert isinstance(key.curve, ec.SECP256R1)
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n")  # poll.go: pem.Block{Type: "EC PRIVATE KEY"}
    loaded = serialization.load_pem_private_key(pem, None)
    assert loaded.private_numbers() == key.private_numbers()


def test_csr_subject_is_the_common_name_only_and_sans_split_on_at() -> None:
    key, _ = new_key()
    sans = ["www.example.test", "ops@example.test", "10.0.0.7", "example.test"]
    pem = build_csr(key, "example.test", sans)
    assert pem.startswith("-----BEGIN CERTIFICATE REQUEST-----\n") and pem.endswith("-----\n")
    csr = x509.load_pem_x509_csr(pem.encode())
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)  # ECDSA-SHA256, Go's default for P-256
    assert [(a.oid, a.value) for a in csr.subject] == [(NameOID.COMMON_NAME, "example.test")]
    san = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert not san.critical
    # every entry without "@" is a dNSName -- IP strings too (poll.go:220-226); the CN is not added
    assert san.value.get_values_for_type(x509.DNSName) == ["www.example.test", "10.0.0.7", "example.test"]
    assert san.value.get_values_for_type(x509.RFC822Name) == ["ops@example.test"]
    assert san.value.get_values_for_type(x509.IPAddress) == []
    assert len(csr.extensions) == 1  # no other extension
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()


def test_csr_without_sans_has_no_extension() -> None:
    key, _ = new_key()
    csr = x509.load_pem_x509_csr(build_csr(key, "solo.example.test", []).encode())
    assert len(csr.extensions) == 0


def test_bodies_are_go_maps_marshalled() -> None:
    """encoding/json sorts a map's keys and escapes <, > and & (main.go makeRequest)."""
    assert go_json({"status": "Failed", "error": "CSR rejected: <html>&"}) == (
        b'{"error":"CSR rejected: \\u003chtml\\u003e\\u0026","status":"Failed"}'
    )
    ident = AgentIdentity.for_index("ag-bound-00007", 6)
    body = json.loads(
        go_json(
            {
                "version": "1.0.0",
                "hostname": ident.hostname,
                "os": ident.os,
                "architecture": ident.architecture,
                "ip_address": ident.ip_address,
            }
        )
    )
    assert list(body) == ["architecture", "hostname", "ip_address", "os", "version"]
    assert body["version"] == "1.0.0"  # a literal in the real agent, not its build version


@pytest.mark.parametrize(
    ("version", "agent"), [("auto", "Go-http-client/2.0"), ("1.1", "Go-http-client/1.1")]
)
def test_headers_are_the_real_agents(version, agent) -> None:
    stack = Stack("external", "https://127.0.0.1:1", "tok", None, "unknown", owned=True)
    headers = AgentProtocol(stack, version).headers
    assert headers == {
        "Authorization": "Bearer tok",
        "Content-Type": "application/json",  # on GETs too
        "User-Agent": agent,
        "Accept-Encoding": "gzip",
    }


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x" * 129, "mc bound"])
def test_certificate_ids_the_agent_refuses_as_key_names(bad) -> None:
    assert key_name_error(bad) is not None
    assert key_name_error("mc-bound-00001") is None


def test_pickup_pem_splits_into_leaf_and_chain_as_deploy_go() -> None:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("x.example.test")
    leaf_pem = leaf.cert_chain_pems[0].bytes().decode()
    ca_pem = ca.cert_pem.bytes().decode()
    got_leaf, chain = split_pem_chain(leaf_pem + "\n" + ca_pem)
    assert got_leaf.strip() == leaf_pem.strip() and chain == ca_pem.strip()
    der = x509.load_pem_x509_certificate(leaf_pem.encode()).public_bytes(serialization.Encoding.DER)
    import hashlib

    assert leaf_fingerprint(got_leaf) == hashlib.sha256(der).hexdigest()


def test_proc_net_tcp_counts_established_per_listening_port() -> None:
    """certctl's side in a container: /proc/net/tcp rows (local port 8443 = 0x20FB)."""
    from pytest_certload.agents.connections import proc_net_tcp

    text = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:20FB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1
   1: 0100007F:20FB 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 0100007F:20FB 0100007F:C351 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
   3: 0100007F:1538 0100007F:C352 01 00000000:00000000 00:00000000 00000000  1000        0 4 1
   4: 0100007F:20FB 0100007F:C353 06 00000000:00000000 00:00000000 00000000  1000        0 5 1
"""
    listening, established = proc_net_tcp(text)
    assert listening == {8443}
    assert established == {8443: 2, 5432: 1}  # TIME_WAIT (06) is not held
