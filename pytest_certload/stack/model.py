"""What a scenario sees of a running stack, whichever provider made it.

Plain data: the docker, native and external providers all produce a :class:`Stack`,
so scenarios never branch on how the stack came to be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ProviderKind = Literal["docker", "native", "external"]
TARGET_NAMES = ("nginx", "apache", "haproxy", "f5")


class Secret(str):
    """A string that never shows itself in reprs, logs or assertion messages."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class Target:
    """One TLS target sidecar (nginx, apache, haproxy or the F5 iControl mock)."""

    name: str
    url: str  # https://127.0.0.1:PORT
    health_path: str = "/"  # the F5 mock answers /healthz
    fingerprint_sha256: str | None = None  # of the leaf it must present; None when unknown (external)


def loopback_target(name: str, port: int, fingerprint_sha256: str, host: str = "127.0.0.1") -> Target:
    """A sidecar the plugin started on loopback (the F5 mock answers its health on /healthz)."""
    return Target(name, f"https://{host}:{port}", "/healthz" if name == "f5" else "/", fingerprint_sha256)


@dataclass
class Stack:
    """A running certctl stack.

    ``server`` says what answers ``certctl_url``: ``"certctl"`` (the real server, version in
    ``server_version``) or ``"stand-in"`` (our test double; every report must say so).
    ``owned`` is True when the plugin started the stack (and so may seed and load it freely).
    """

    kind: ProviderKind
    certctl_url: str
    token: Secret
    ca_bundle: Path | None  # verifies certctl and every target; None only for an external stack without CA
    server: Literal["certctl", "stand-in", "unknown"]
    owned: bool
    dsn: Secret | None = None
    targets: dict[str, Target] = field(default_factory=dict)
    server_version: str | None = None
    postgres_version: str | None = None
    rate_limit_enabled: bool = False
    bootstrap_token: Secret | None = None
    components: dict[str, dict] = field(default_factory=dict)  # name -> {command|image, ready_s, log}
    skipped: dict[str, str] = field(default_factory=dict)  # target name -> why it is not in ``targets``

    @property
    def target_label(self) -> str:
        """The label every report carries: 'certctl stand-in' or 'certctl <version>'."""
        if self.server == "stand-in":
            return "certctl stand-in"
        if self.server == "certctl":
            return f"certctl {self.server_version or '(version unknown)'}"
        return "certctl (unverified external deployment)"

    def describe(self) -> dict:
        """A JSON-safe description for summaries: no token, no password."""
        return {
            "provider": self.kind,
            "target": self.target_label,
            "certctl_url": self.certctl_url,
            "server": self.server,
            "server_version": self.server_version,
            "postgres_version": self.postgres_version,
            "rate_limit_enabled": self.rate_limit_enabled,
            "owned": self.owned,
            "targets": {name: t.url for name, t in self.targets.items()},
            "skipped_targets": dict(self.skipped),
            "components": {
                name: {k: v for k, v in info.items() if k in ("command", "image", "ready_s", "version")}
                for name, info in self.components.items()
            },
        }
