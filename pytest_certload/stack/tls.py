"""TLS material for one session: a throw-away CA and one leaf for every loopback service.

Every TLS endpoint of a plugin-started stack (certctl or its stand-in, the sidecars, the F5 mock)
presents the same leaf, signed by a CA that exists only for this session. Clients verify against
``ca.pem``; readiness checks compare the presented leaf's SHA-256 fingerprint with ours, so a
stranger listening on the same port cannot pass for our service.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TLSMaterial:
    """Paths to the session's CA and server leaf, plus the leaf's fingerprint."""

    directory: Path
    ca_cert: Path  # PEM, the bundle clients verify against
    server_cert: Path  # PEM leaf followed by nothing else
    server_key: Path  # PEM, PKCS#8, mode 0644 so non-root daemons in containers can read it
    server_pem: Path  # leaf + key in one file (HAProxy's format)
    fingerprint_sha256: str  # hex, lower case, of the leaf's DER

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext that trusts only this session's CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def make_tls_material(directory: Path, names: tuple[str, ...] = LOOPBACK_NAMES) -> TLSMaterial:
    """Create a CA and an ECDSA P-256 leaf for ``names`` in ``directory`` (created if absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA, organization_name="pytest-certload session CA")
    leaf = ca.issue_cert(*names, key_type=trustme.KeyType.ECDSA, common_name="certload-loopback")
    ca_cert = directory / "ca.pem"
    server_cert = directory / "server.crt"
    server_key = directory / "server.key"
    server_pem = directory / "server.pem"
    ca.cert_pem.write_to_path(str(ca_cert))
    leaf_pem = leaf.cert_chain_pems[0].bytes()
    server_cert.write_bytes(leaf_pem)
    server_key.write_bytes(leaf.private_key_pem.bytes())
    server_pem.write_bytes(leaf_pem + leaf.private_key_pem.bytes())
    for path in (ca_cert, server_cert, server_key, server_pem):
        os.chmod(path, 0o644)
    os.chmod(directory, 0o755)
    return TLSMaterial(directory, ca_cert, server_cert, server_key, server_pem, fingerprint_of_pem(leaf_pem))


def fingerprint_of_pem(pem: bytes) -> str:
    """SHA-256 of a PEM certificate's DER encoding, lower-case hex."""
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_of_der(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex (what ``SSLSocket.getpeercert(True)`` returns)."""
    return hashlib.sha256(der).hexdigest()


def presented_fingerprint(host: str, port: int, timeout: float = 2.0) -> str:
    """Handshake with ``host:port`` without verifying and return the presented leaf's fingerprint.

    Used by readiness checks, which then compare it with ours: verification is the client's job,
    identity is the readiness check's.
    """
    import socket

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return fingerprint_of_der(der)


def self_signed_ca(
    common_name: str,
    *,
    path_length: int | None = 0,
    subject_key_id: Callable[[ec.EllipticCurvePublicKey], bytes] | None = None,
    backdate: dt.timedelta = dt.timedelta(hours=1),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 CA certificate and its key, valid ten years (the ACME issuer CA, the stand-in's own).

    ``subject_key_id(public_key)`` defaults to RFC 5280's SHA-1 of the key; the stand-in passes certctl's.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    ski = (
        x509.SubjectKeyIdentifier(subject_key_id(key.public_key()))
        if subject_key_id is not None
        else x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key
