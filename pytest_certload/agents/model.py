"""One simulated agent: who it says it is, and the private keys it generated (in memory only).

The real agent keeps each key in ``<CERTCTL_KEY_DIR>/<certificate_id>.key`` (cmd/agent/poll.go:160-207)
and a deployment reads it back (deploy.go:114-140). Here the file is a dict entry: a deployment of a
certificate this agent did not key fails the same way ("key read failed").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: certctl's agent refuses other certificate ids as key file names (cmd/agent/keymem.go:61-125)
KEY_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: what the real agent reports (cmd/agent/main.go:363-369): version is the literal "1.0.0"
AGENT_VERSION = "1.0.0"


def key_name_error(certificate_id: str) -> str | None:
    """Why the real agent would refuse ``certificate_id`` as a key file name, or None."""
    if certificate_id in (".", "..") or not KEY_NAME.match(certificate_id):
        return f"invalid certificate_id {certificate_id!r} for a key file name"
    return None


@dataclass
class AgentIdentity:
    """What one agent reports in its heartbeat; ``ip_address`` is made up (no route is looked up)."""

    agent_id: str
    index: int
    hostname: str
    os: str = "linux"
    architecture: str = "amd64"
    ip_address: str = ""

    @classmethod
    def for_index(cls, agent_id: str, index: int) -> AgentIdentity:
        return cls(
            agent_id,
            index,
            hostname=f"{agent_id}.agents.certload.test",
            ip_address=f"10.77.{(index // 256) % 256}.{index % 256}",
        )


@dataclass
class AgentState:
    """An agent's identity and its keys: certificate id -> PEM (SEC1 ``EC PRIVATE KEY``)."""

    identity: AgentIdentity
    keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def agent_id(self) -> str:
        return self.identity.agent_id
