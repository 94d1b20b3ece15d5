"""A ``Deployment`` job as certctl's agent runs it (cmd/agent/deploy.go:77-242).

Status ``Running``; ``GET /certificates/{id}`` (200 with ``certificate_pem`` or ``Failed`` "cert fetch
failed"); first PEM block = leaf, the rest = chain; the key this agent generated for the certificate
(none -> ``Failed`` "key read failed", even without a target type); then, when the work item names a
target type, the connector step; finally ``Completed``.

The connector step, for a target the test named as sidecar-bound (a sidecar it started) whose config
carries ``cert_path``:
write leaf, chain (when ``chain_path`` is set) and key where the sidecar reads them, run
``reload_command`` (split shell-style and executed without a shell, as certctl's NGINX connector
does: nginx.go:164-171), and -- when the config names a ``host`` (``port`` default 443) -- verify with
fresh TLS handshakes that the served leaf's SHA-256 is the new one, then ``POST /jobs/{id}/verify``
as the agent does (verify.go). The real agent sleeps 2 s and probes once; here probes repeat until
the new leaf is served or ``verify_timeout`` passes, so ``agent_served_after`` measures when the
sidecar served it. Like the agent's, a failed verification does not fail the job. Every other
target gets no file write (its deployment is the protocol only): nothing is written outside the
directories a test made for its sidecar.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import ssl
from pathlib import Path
from time import monotonic_ns

from pytest_certload.agents.model import AgentState
from pytest_certload.agents.protocol import AgentProtocol, WorkItem
from pytest_certload.stack.tls import fingerprint_of_der, fingerprint_of_pem

VERIFY_TIMEOUT_S = 10.0  # the agent's TLS dial timeout (verify.go:250)
PROBE_PAUSE_S = 0.05


def split_pem_chain(pem: str) -> tuple[str, str]:
    """First PEM block and the trimmed rest (deploy.go:419-433)."""
    end_marker = "-----END CERTIFICATE-----"
    cut = pem.find(end_marker)
    if cut < 0:
        return pem, ""
    cut += len(end_marker)
    return pem[:cut] + "\n", pem[cut:].strip()


def leaf_fingerprint(leaf_pem: str) -> str:
    """SHA-256 of the leaf's DER, lower-case hex, as verify.go computes it."""
    return fingerprint_of_pem(leaf_pem.encode())


def _probe_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the agent's probe: InsecureSkipVerify, fingerprints compared
    return ctx


_PROBE_CTX: ssl.SSLContext | None = None


async def served_fingerprint(host: str, port: int, timeout: float) -> str:
    """The SHA-256 of the leaf a fresh TLS handshake to host:port gets; raises OSError/ssl.SSLError."""
    global _PROBE_CTX
    if _PROBE_CTX is None:
        _PROBE_CTX = _probe_context()
    sni = None if host.replace(".", "").isdigit() or ":" in host else host
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port, ssl=_PROBE_CTX, server_hostname=sni or "")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return fingerprint_of_der(der or b"")


class Sidecar:
    """The files, reload and probe of one sidecar-bound target, read from its target config."""

    def __init__(self, config: dict) -> None:
        self.cert_path = Path(str(config["cert_path"]))
        self.key_path = Path(str(config["key_path"])) if config.get("key_path") else None
        self.chain_path = Path(str(config["chain_path"])) if config.get("chain_path") else None
        self.reload_command = str(config.get("reload_command") or "")
        host = next((config[k] for k in ("host", "hostname", "target", "address") if config.get(k)), None)
        self.host = str(host) if isinstance(host, str) else None
        port = config.get("port", 443)
        self.port = int(port) if isinstance(port, int | float) else 443

    def write(self, leaf: str, chain: str, key_pem: bytes) -> None:
        self.cert_path.write_text(leaf)
        if self.chain_path is not None and chain:
            self.chain_path.write_text(chain + "\n")
        if self.key_path is not None:
            self.key_path.write_bytes(key_pem)

    async def reload(self) -> str:
        """Run the reload command; '' on success, else what failed."""
        if not self.reload_command:
            return ""
        argv = shlex.split(self.reload_command)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(30):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return "reload timed out after 30 s"
        if proc.returncode:
            return f"reload exited {proc.returncode}: {err.decode('utf-8', 'replace').strip()[:200]}"
        return ""

    async def wait_served(self, expected: str, timeout: float) -> tuple[str, str]:
        """Probe until ``expected`` is served or ``timeout``: (last fingerprint seen, error)."""
        assert self.host is not None
        deadline = monotonic_ns() + int(timeout * 1e9)
        actual, error = "", ""
        while True:
            left = (deadline - monotonic_ns()) / 1e9
            try:
                actual, error = await served_fingerprint(self.host, self.port, max(left, 0.1)), ""
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                error = f"failed to connect to {self.host}:{self.port}: {type(exc).__name__}"
            if actual == expected or monotonic_ns() >= deadline:
                return actual, error
            await asyncio.sleep(PROBE_PAUSE_S)


async def run_deploy_job(
    ctx,
    proto: AgentProtocol,
    agent: AgentState,
    job: WorkItem,
    *,
    verify_timeout: float = VERIFY_TIMEOUT_S,
    report_verification: bool = True,
    sidecar_targets: frozenset[str] = frozenset(),
) -> tuple[str, bool | None]:
    """Do the job: (outcome "completed" | "failed", served: True/False for a verified sidecar, else None)."""
    await proto.report_status(ctx, agent, job.id, "Running")  # error only logged by the agent
    resp = await proto.pickup(ctx, agent, job.certificate_id)
    cert_pem = ""
    if resp.status == 200:
        try:
            cert_pem = str(json.loads(resp.body).get("certificate_pem") or "")
        except (ValueError, AttributeError):
            cert_pem = ""
    if not cert_pem:
        why = resp.error if resp.status == 0 else f"server returned {resp.status}"
        await proto.report_status(ctx, agent, job.id, "Failed", f"cert fetch failed: {why}")
        return "failed", None
    leaf, chain = split_pem_chain(cert_pem)
    key_pem = agent.keys.get(job.certificate_id)
    if key_pem is None:
        error = f"key read failed: no key generated by agent {agent.agent_id} for {job.certificate_id}"
        await proto.report_status(ctx, agent, job.id, "Failed", error)
        ctx.counter("agent_key_missing")
        return "failed", None
    served: bool | None = None
    config = job.target_config if isinstance(job.target_config, dict) else {}
    if job.target_type and job.target_id in sidecar_targets and config.get("cert_path"):
        sidecar = Sidecar(config)
        began = monotonic_ns()
        try:
            sidecar.write(leaf, chain, key_pem)
        except OSError as exc:
            await proto.report_status(ctx, agent, job.id, "Failed", f"deployment failed: {exc}")
            return "failed", None
        problem = await sidecar.reload()
        ctx.trend("agent_deploy_write_reload", monotonic_ns() - began)
        if problem:
            await proto.report_status(ctx, agent, job.id, "Failed", f"deployment failed: {problem}")
            return "failed", None
        if sidecar.host is not None:
            expected = leaf_fingerprint(leaf)
            reloaded = monotonic_ns()
            actual, error = await sidecar.wait_served(expected, verify_timeout)
            served = actual == expected
            ctx.rate("agent_served", served, {"agent_step": "verify"})
            if served:
                ctx.trend("agent_served_after", monotonic_ns() - reloaded, {"agent_step": "verify"})
            if report_verification and job.target_id:
                await proto.report_verification(ctx, job.id, job.target_id, expected, actual, served, error)
    await proto.report_status(ctx, agent, job.id, "Completed")
    return "completed", served
