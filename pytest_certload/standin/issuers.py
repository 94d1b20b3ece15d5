"""``iss-local``, the issuer ACME finalize signs with, and ``PUT /api/v1/issuers/{id}`` that configures it.

certctl's local issuer (internal/connector/issuer/local/local.go): with ``ca_cert_path`` and
``ca_key_path`` in its config it signs as that CA (sub-CA mode, loaded on first use), otherwise with
an ephemeral CA made at start. The stand-in does the same; its ephemeral CA is ECDSA P-256 (certctl
makes RSA-2048: a cheaper double, the load generator's CPU is shared with it). A leaf is what
certctl's generateCertificate makes: the CSR's subject, SANs = the CSR's names plus the order's,
serial random below 2^159 stored as 40 zero-padded hex digits, SKI = SHA-256 of the public key,
AKI = the CA's SKI, validity ``validity_days`` (90) capped by the profile's ``max_ttl_seconds``,
EKUs from the profile (serverAuth) with digitalSignature + keyEncipherment.

certctl rebuilds its issuer registry after every issuer update; the stand-in drops its cached CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from pytest_certload.stack.tls import self_signed_ca
from pytest_certload.standin.gocompat import DecodeError, as_bool, as_string, go_time
from pytest_certload.standin.pool import PoolSlot
from pytest_certload.standin.repository import acme as repo
from pytest_certload.standin.request_body import decode_struct
from pytest_certload.standin.responses import handler_error, json_response

EKUS = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}
SENSITIVE = ("key", "password", "secret", "token", "private", "hmac", "credentials")
_ISSUER_FIELDS = (
    "id",
    "name",
    "type",
    "config",
    "enabled",
    "test_status",
    "source",
    "hierarchy_mode",
    "created_at",
)


class IssuerError(Exception):
    """The issuer cannot sign (certctl: "issuer rejected the CSR")."""


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: Any
    pem: str


@dataclass(frozen=True)
class Issuance:
    cert_pem: str
    chain_pem: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str
    key_algorithm: str
    key_size: int


def _ski(public_key: Any) -> bytes:
    """certctl's hashPublicKey: SHA-256 of the RSA modulus / the uncompressed EC point / nothing
    for any other key (Ed25519: local.go:1047-1065 has no case for it)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        n = public_key.public_numbers().n
        return hashlib.sha256(n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        raw = public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return hashlib.sha256(raw).digest()
    return hashlib.sha256(b"").digest()


def _ephemeral_ca(common_name: str) -> CA:
    cert, key = self_signed_ca(
        common_name, path_length=None, subject_key_id=_ski, backdate=dt.timedelta(minutes=5)
    )
    return CA(cert, key, cert.public_bytes(serialization.Encoding.PEM).decode())


def _ca_from_disk(cert_path: str, key_path: str) -> CA:
    try:
        pem = Path(cert_path).read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise IssuerError(f"CA initialization failed: {exc}") from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise IssuerError("loaded certificate is not a CA (BasicConstraints.IsCA=false)")
    return CA(cert, key, pem.decode())


class LocalIssuer:
    """iss-local's CA, read from the issuers row on first use and after every update."""

    issuer_id = "iss-local"

    def __init__(self) -> None:
        self._ca: CA | None = None
        self._ephemeral: CA | None = None
        self._validity_days = 90

    def forget(self) -> None:
        self._ca = None

    async def ca(self, conn: psycopg.AsyncConnection) -> CA:
        if self._ca is None:
            config = await repo.issuer_config(conn, self.issuer_id)
            if config is None:
                raise IssuerError("acme: no issuer available in registry")
            if config.get("ca_cert_path") and config.get("ca_key_path"):
                self._ca = _ca_from_disk(str(config["ca_cert_path"]), str(config["ca_key_path"]))
            else:
                if self._ephemeral is None:
                    self._ephemeral = _ephemeral_ca(str(config.get("ca_common_name") or "CertCtl Local CA"))
                self._ca = self._ephemeral
            self._validity_days = int(config.get("validity_days") or 90)
        return self._ca

    async def issue(
        self,
        conn: psycopg.AsyncConnection,
        csr: x509.CertificateSigningRequest,
        sans: list[str],
        ekus: list[str],
        max_ttl_s: int,
    ) -> Issuance:
        ca = await self.ca(conn)
        if not csr.is_signature_valid:
            raise IssuerError("CSR signature verification failed")
        try:
            csr_names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = set(csr_names.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = set()
        names.update(sans)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        not_after = now + dt.timedelta(days=self._validity_days)
        if max_ttl_s > 0:
            not_after = min(not_after, now + dt.timedelta(seconds=max_ttl_s))
        resolved = [EKUS[e] for e in ekus if e in EKUS] or [EKUS["serverAuth"], EKUS["clientAuth"]]
        serial = secrets.randbelow(1 << 159) or 1
        pub = csr.public_key()
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.cert.subject)
            .public_key(pub)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(not_after)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), True)
            .add_extension(x509.ExtendedKeyUsage(resolved), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sorted(names)]), False)
            .add_extension(x509.SubjectKeyIdentifier(_ski(pub)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(ski, None, None), critical=False)
            .sign(ca.key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        if isinstance(pub, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            algorithm, size = ("RSA" if isinstance(pub, rsa.RSAPublicKey) else "ECDSA"), pub.key_size
        else:
            algorithm, size = "Ed25519", 256
        return Issuance(
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca.pem,
            f"{serial:040x}",
            now,
            not_after,
            hashlib.sha256(der).hexdigest(),
            algorithm,
            size,
        )


def redacted(config: Any) -> Any:
    """certctl's redactConfigJSON: values of keys naming a secret become ********."""
    if not isinstance(config, dict):
        return config
    return {k: ("********" if any(s in k.lower() for s in SENSITIVE) else v) for k, v in config.items()}


@dataclass(frozen=True)
class IssuerHandlers:
    """``PUT /api/v1/issuers/{id}``: certctl's IssuerHandler.UpdateIssuer (no encrypted copy)."""

    db: PoolSlot
    issuer: LocalIssuer
    max_body_size: int

    async def update(self, request: web.Request, rid: str) -> web.StreamResponse:
        issuer_id = request["path_values"][3]
        try:
            fields = await decode_struct(request, _ISSUER_FIELDS, self.max_body_size)
            name, type_ = as_string(fields.get("name")), as_string(fields.get("type"))
            enabled = as_bool(fields.get("enabled"))
            config = fields.get("config")
        except DecodeError:
            return handler_error(400, "Invalid request body", rid)
        now = dt.datetime.now(dt.UTC)
        row = {
            "id": issuer_id,
            "name": name,
            "type": type_,
            "config": config,
            "enabled": enabled,
            "test_status": as_string(fields.get("test_status")),
            "updated_at": now,
        }
        try:
            async with self.db.connection() as conn:
                updated = await repo.update_issuer(conn, row)
        except psycopg.errors.UniqueViolation:
            return handler_error(409, "An issuer with this name already exists", rid)
        except (psycopg.Error, OSError):
            return handler_error(500, "Failed to update issuer", rid)
        if not updated:
            return handler_error(404, "Issuer not found", rid)
        if issuer_id == self.issuer.issuer_id:
            self.issuer.forget()
        body = {"id": issuer_id, "name": name, "type": type_, "config": redacted(config), "enabled": enabled}
        if row["test_status"]:
            body["test_status"] = row["test_status"]
        body |= {"created_at": "0001-01-01T00:00:00Z", "updated_at": go_time(now)}
        return json_response(200, body)
