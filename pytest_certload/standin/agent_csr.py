"""An agent's CSR, signed inside the request as certctl does it (no SQL here; it is in repository/).

certctl's AgentService.SubmitCSR (internal/service/agent.go:139-256) with a ``certificate_id``:

- the **newest** ``AwaitingCSR`` job of the certificate is completed through
  RenewalService.CompleteAgentCSRRenewal (internal/service/renewal.go:702-821): CSR checked
  against the profile, job ``Running``, signed by the certificate's issuer, a
  ``certificate_versions`` row, the certificate ``Active`` with the new ``expires_at``, job
  ``Completed``, one ``Pending`` Deployment job per mapped target (with the target's agent,
  renewal.go:826-887), a renewal notification row; each failure marks the job ``Failed``;
- without an ``AwaitingCSR`` job (or when listing the certificate's jobs fails) the CSR is signed
  directly (agent.go:181-244): a new version and the certificate ``Active``, no job change, no
  deployment jobs. A late or duplicate CSR therefore still issues a certificate.

The job the agent was working on is not an input (certctl picks the newest AwaitingCSR job). The
only issuer the stand-in has is ``iss-local`` (:class:`.issuers.LocalIssuer`, the CA ACME finalize
uses too); a certificate naming another issuer is "issuer connector not found", which certctl
answers for an issuer absent from its registry. Every failure is :class:`CSRFailed`, which the
handler turns into certctl's one answer for all of them (500 "Failed to submit CSR").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pytest_certload.standin.issuers import Issuance, IssuerError, LocalIssuer
from pytest_certload.standin.repository import ScanError, generate_id, jobs, notifications
from pytest_certload.standin.repository import certificates as cert_repo


class CSRFailed(Exception):
    """Any service error of certctl's SubmitCSR; its text is what certctl would log."""


@dataclass(frozen=True)
class KeyInfo:
    """certctl's CSRValidationResult (internal/service/crypto_validation.go:58-88)."""

    algorithm: str
    size: int


def parse_csr(csr_pem: str) -> tuple[x509.CertificateSigningRequest, KeyInfo]:
    """certctl's extractCSRKeyInfo: parse, check the signature, name the key."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise CSRFailed(f"failed to parse CSR: {exc}") from None
    if not csr.is_signature_valid:
        raise CSRFailed("CSR signature verification failed")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return csr, KeyInfo("RSA", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return csr, KeyInfo("ECDSA", key.curve.key_size)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return csr, KeyInfo("Ed25519", 256)
    raise CSRFailed(f"unsupported key type in CSR: {type(key).__name__}")


def check_profile(info: KeyInfo, profile: dict[str, Any] | None) -> None:
    """certctl's ValidateCSRAgainstProfile rule match (crypto_validation.go:26-52)."""
    if profile is None or not profile["key_rules"]:
        return
    for rule in profile["key_rules"]:
        if rule.get("algorithm") == info.algorithm and info.size >= int(rule.get("min_size") or 0):
            return
    raise CSRFailed(
        f"CSR key ({info.algorithm} {info.size}-bit) does not match any allowed algorithm in profile "
        f"{profile['name']!r}"
    )


@dataclass(frozen=True)
class CSRService:
    """``submit(conn, cert_id, csr_pem)``: the certificate path of certctl's SubmitCSR."""

    issuer: LocalIssuer

    async def submit(self, conn: psycopg.AsyncConnection, cert_id: str, csr_pem: str) -> str:
        """Sign ``csr_pem`` for ``cert_id``; returns the completed job's id ('' for direct signing)."""
        try:
            cert = await cert_repo.find_certificate(conn, cert_id)
        except ScanError as exc:
            raise CSRFailed(f"failed to fetch certificate: {exc}") from None
        if cert is None:
            raise CSRFailed("failed to fetch certificate: certificate not found")
        try:
            awaiting = [j for j in await jobs.jobs_of_certificate(conn, cert_id) if j.status == "AwaitingCSR"]
        except ScanError:
            awaiting = []  # agent.go:159: a failed listing falls through to direct signing
        if awaiting:
            await self._complete_renewal(conn, awaiting[0], cert, csr_pem)
            return awaiting[0].id
        await self._sign_directly(conn, cert, csr_pem)
        return ""

    async def _profile(self, conn: psycopg.AsyncConnection, cert: dict[str, Any]) -> dict[str, Any] | None:
        profile_id = cert["certificate_profile_id"]
        return await cert_repo.profile_policy(conn, profile_id) if profile_id else None

    async def _issue(
        self,
        conn: psycopg.AsyncConnection,
        csr: x509.CertificateSigningRequest,
        cert: dict[str, Any],
        profile: dict[str, Any] | None,
    ) -> Issuance:
        """Sign for the certificate's SANs under the profile's EKUs and TTL cap (both CSR paths)."""
        ekus, max_ttl = (profile["ekus"], profile["max_ttl_seconds"]) if profile else ([], 0)
        return await self.issuer.issue(conn, csr, list(cert["sans"] or []), ekus, max_ttl)

    async def _complete_renewal(
        self, conn: psycopg.AsyncConnection, job: jobs.JobRow, cert: dict[str, Any], csr_pem: str
    ) -> None:
        """renewal.go:702-821, statement for statement."""
        if cert["issuer_id"] != self.issuer.issuer_id:
            await jobs.set_job_status(
                conn, job.id, "Failed", f"issuer connector not found for {cert['issuer_id']}"
            )
            raise CSRFailed(f"issuer connector not found for {cert['issuer_id']}")
        profile = await self._profile(conn, cert)
        try:
            csr, info = parse_csr(csr_pem)
            check_profile(info, profile)
        except CSRFailed as exc:
            await jobs.set_job_status(conn, job.id, "Failed", f"CSR validation failed: {exc}")
            raise
        if not await jobs.set_job_status(conn, job.id, "Running"):
            raise CSRFailed("failed to update job status: job not found")
        try:
            issued = await self._issue(conn, csr, cert, profile)
        except IssuerError as exc:
            await jobs.set_job_status(conn, job.id, "Failed", f"issuer signing failed: {exc}")
            await notifications.record_renewal_notification(
                conn, cert["id"], cert["owner_id"], False,
                f"The certificate for {cert['common_name']} failed to renew.\n\nError: {exc}\n\n"
                "Please investigate.",
            )  # fmt: skip
            raise CSRFailed(f"issuer signing failed: {exc}") from None
        now = datetime.now(UTC)
        try:
            await cert_repo.insert_version(conn, _version(cert["id"], issued, csr_pem, info, now))
        except psycopg.Error as exc:
            await jobs.set_job_status(conn, job.id, "Failed", f"version creation failed: {exc}")
            raise CSRFailed(f"failed to create certificate version: {exc}") from None
        if not await cert_repo.mark_renewed(conn, cert["id"], issued.not_after, now):
            await jobs.set_job_status(conn, job.id, "Failed", "cert update failed: certificate not found")
            raise CSRFailed("failed to update certificate: certificate not found")
        if not await jobs.set_job_status(conn, job.id, "Completed"):
            raise CSRFailed("failed to update job status: job not found")
        for target_id, agent_id in await cert_repo.mapped_targets(conn, cert["id"]):
            await jobs.enqueue_deployment_job(conn, cert["id"], target_id, agent_id)
        await notifications.record_renewal_notification(
            conn, cert["id"], cert["owner_id"], True,
            f"The certificate for {cert['common_name']} has been successfully renewed.\n\n"
            f"New expiry: {issued.not_after:%Y-%m-%d}",
        )  # fmt: skip

    async def _sign_directly(self, conn: psycopg.AsyncConnection, cert: dict[str, Any], csr_pem: str) -> None:
        """agent.go:181-244: only when the issuer is registered; the certificate update may fail silently."""
        if cert["issuer_id"] != self.issuer.issuer_id:
            return
        profile = await self._profile(conn, cert)
        csr, info = parse_csr(csr_pem)
        check_profile(info, profile)
        try:
            issued = await self._issue(conn, csr, cert, profile)
        except IssuerError as exc:
            raise CSRFailed(f"issuer signing failed: {exc}") from None
        now = datetime.now(UTC)
        try:
            await cert_repo.insert_version(conn, _version(cert["id"], issued, csr_pem, info, now))
        except psycopg.Error as exc:
            raise CSRFailed(f"failed to store certificate version: {exc}") from None
        with contextlib.suppress(psycopg.Error):  # agent.go:239-241 only logs it
            await cert_repo.mark_renewed(conn, cert["id"], issued.not_after, now)


def _version(cert_id: str, issued: Any, csr_pem: str, info: KeyInfo, now: datetime) -> dict[str, Any]:
    return {
        "id": generate_id("certver"),
        "certificate_id": cert_id,
        "serial_number": issued.serial,
        "not_before": issued.not_before,
        "not_after": issued.not_after,
        "fingerprint_sha256": issued.fingerprint,
        "pem_chain": issued.cert_pem + "\n" + issued.chain_pem,
        "csr_pem": csr_pem,
        "key_algorithm": info.algorithm,
        "key_size": info.size,
        "created_at": now,
    }
