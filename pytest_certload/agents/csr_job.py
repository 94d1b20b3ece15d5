"""An ``AwaitingCSR`` job as certctl's agent runs it (cmd/agent/poll.go:120-290).

A fresh ECDSA P-256 key per job, kept before anything else can fail (the real agent writes the key
file before the empty-CN check and before sending); a CSR whose subject is the CN only and whose
SANs are split as poll.go:220-236 splits them (an entry with ``@`` is an rfc822Name, every other
one -- IP strings too -- a dNSName; the CN is not copied into the SANs); ``POST /csr`` must answer
202, and on anything else the job is reported ``Failed`` with the server's body. A successful CSR
is not reported: certctl completes the job itself.
"""

from __future__ import annotations

from time import monotonic_ns

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pytest_certload.agents.model import AgentState, key_name_error
from pytest_certload.agents.protocol import AgentProtocol, WorkItem


def new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A P-256 key and its PEM as the agent stores it (SEC1 DER in an ``EC PRIVATE KEY`` block)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key, pem


def build_csr(key: ec.EllipticCurvePrivateKey, common_name: str, sans: list[str]) -> str:
    """The CSR the agent builds: CN only, SANs split on ``@``, ECDSA-SHA256; PEM with trailing newline."""
    dns = [s for s in sans if "@" not in s]
    emails = [s for s in sans if "@" in s]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.RFC822Name(e) for e in emails]
    if names:  # Go adds the extension only when there is a name to carry
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def run_csr_job(ctx, proto: AgentProtocol, agent: AgentState, job: WorkItem) -> str:
    """Do the job; returns the outcome: "submitted", "rejected" or "failed" (reported Failed)."""
    problem = key_name_error(job.certificate_id)
    if problem is not None:
        await proto.report_status(ctx, agent, job.id, "Failed", f"key path validation failed: {problem}")
        return "failed"
    began = monotonic_ns()
    key, pem = new_key()
    agent.keys[job.certificate_id] = pem  # overwritten on each CSR job, as the key file is
    if not job.common_name:
        await proto.report_status(ctx, agent, job.id, "Failed", "empty common name")
        return "failed"
    try:
        csr_pem = build_csr(key, job.common_name, job.sans)
    except ValueError as exc:  # a SAN cryptography will not encode (Go's would fail alike)
        await proto.report_status(ctx, agent, job.id, "Failed", f"CSR creation failed: {exc}")
        return "failed"
    ctx.trend("agent_keygen_csr", monotonic_ns() - began)  # generator CPU per CSR job
    resp = await proto.submit_csr(ctx, agent, job.certificate_id, csr_pem)
    if resp.status == 202:
        return "submitted"
    if resp.status == 0:
        error = f"CSR submission failed: {resp.error}"
    else:
        error = "CSR rejected: " + resp.body.decode("utf-8", "replace")
    await proto.report_status(ctx, agent, job.id, "Failed", error)
    return "rejected"
