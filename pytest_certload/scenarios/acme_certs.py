"""Certificates on the client side of an ACME issuance: CSR, chain check, ARI CertID, our issuer CA.

Everything here is ``cryptography`` (the OpenSSL/Rust bindings): a fresh key and CSR per order, the
downloaded chain verified with cryptography's RFC 5280 path builder against the stack's issuer CA,
and the leaf's SANs and public key compared with what the CSR asked for.

The issuer CA is ours: :func:`register_issuer_ca` writes a CA we generate to files and points
certctl's ``iss-local`` at them (``PUT /api/v1/issuers/iss-local``, certctl rebuilds its issuer
registry), so a chain is checked against a trust anchor that did not come from the server. Where
the server cannot read our files (a docker or external stack) the anchor is the CA certificate of
the first chain the server returns (``Trust.pinned``), and reports say so.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from pytest_certload.stack.tls import self_signed_ca

ISSUER_ID = "iss-local"
#: the row certctl's seed (and the plugin's ensure_demo_rows) gives iss-local
ISSUER_NAME = "Local Dev CA"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(kind: str = "ec") -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    """A certificate key: ECDSA P-256 (``ec``, ~10 us) or RSA-2048 (``rsa``, ~50 ms: pre-generate)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def new_csr(names: list[str], key) -> str:
    """A PKCS#10 CSR for ``names`` (CN = first name, every name a dNSName), base64url DER."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    )
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    csr = builder.sign(key, hashes.SHA256())
    return b64url(csr.public_bytes(serialization.Encoding.DER))


class CertInvalid(Exception):
    """The downloaded certificate does not verify; ``reason`` is the metric tag."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


@dataclass
class Trust:
    """The trust anchor chains are verified against: our CA, or (pinned) the first chain's CA."""

    ca: x509.Certificate | None
    source: str  # "registered" (our CA, set on the server) or "pinned from the first chain"
    _store: Store | None = field(default=None, repr=False)

    @classmethod
    def registered(cls, ca: x509.Certificate) -> Trust:
        return cls(ca, "registered")

    @classmethod
    def pinned(cls) -> Trust:
        return cls(None, "pinned from the first chain (the server's CA could not be set)")

    def store(self, chain: list[x509.Certificate]) -> Store:
        if self._store is None:
            if self.ca is None:  # pin the first chain's last certificate
                if len(chain) < 2:
                    raise CertInvalid("no_chain", "the server sent no CA certificate to pin")
                self.ca = chain[-1]
            self._store = Store([self.ca])
        return self._store


def verify_issued(pem_chain: bytes, trust: Trust, names: list[str], key) -> x509.Certificate:
    """Check a downloaded chain; return the leaf, or raise :class:`CertInvalid`.

    The chain must build to the trust anchor (RFC 5280 path validation for a TLS server name), the
    leaf's dNSNames must be exactly ``names`` and its public key the CSR's.
    """
    try:
        chain = x509.load_pem_x509_certificates(pem_chain)
    except ValueError as exc:
        raise CertInvalid("unparseable", str(exc)) from None
    leaf = chain[0]
    verifier = (
        PolicyBuilder()
        .store(trust.store(chain))
        .time(dt.datetime.now(dt.UTC))
        .build_server_verifier(DNSName(names[0]))
    )
    try:
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        raise CertInvalid("chain", str(exc)) from None
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertInvalid("sans", "no subjectAltName") from None
    got = sorted(n.lower() for n in san.get_values_for_type(x509.DNSName))
    if got != sorted(n.lower() for n in names):
        raise CertInvalid("sans", f"dNSNames {got} != ordered {sorted(names)}")
    if leaf.public_key() != key.public_key():
        raise CertInvalid("key", "the leaf's public key is not the CSR's")
    return leaf


def ari_cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 §4.1 CertID: base64url(AKI keyIdentifier) "." base64url(serial, DER INTEGER bytes)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number
    return b64url(aki or b"") + "." + b64url(serial.to_bytes(serial.bit_length() // 8 + 1, "big"))


def serial_hex40(cert: x509.Certificate) -> str:
    """The serial as certctl's local issuer stores it: 40 zero-padded lowercase hex digits."""
    return f"{cert.serial_number:040x}"


@dataclass(frozen=True)
class IssuerCA:
    """A CA of ours for iss-local: ECDSA P-256, files the server reads (key 0600)."""

    cert: x509.Certificate
    cert_path: Path
    key_path: Path

    @classmethod
    def load_or_create(cls, directory: Path) -> IssuerCA:
        """The CA in ``directory``, created there by the first process that asks (others wait)."""
        from filelock import FileLock

        directory.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory / "issuer-ca.lock")):
            cert_path, key_path = directory / "issuer-ca.pem", directory / "issuer-ca.key"
            if cert_path.is_file() and key_path.is_file():
                return cls(x509.load_pem_x509_certificate(cert_path.read_bytes()), cert_path, key_path)
            return cls.create(directory)

    @classmethod
    def create(cls, directory: Path, common_name: str = "pytest-certload ACME issuer CA") -> IssuerCA:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_ca(common_name)
        cert_path, key_path = directory / "issuer-ca.pem", directory / "issuer-ca.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        return cls(cert, cert_path, key_path)

    def issuer_body(self, validity_days: int = 90) -> dict:
        """The ``PUT /api/v1/issuers/iss-local`` body: certctl's local issuer in sub-CA mode."""
        config = {
            "ca_cert_path": str(self.cert_path),
            "ca_key_path": str(self.key_path),
            "validity_days": validity_days,
        }
        return {
            "id": ISSUER_ID,
            "name": ISSUER_NAME,
            "type": "GenericCA",
            "config": config,
            "enabled": True,
            "test_status": "untested",
        }
