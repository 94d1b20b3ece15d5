"""What a scenario sees of a running stack, whichever provider made it.

Plain data: the docker, native and external providers all produce a :class:`Stack`,
so scenarios never branch on how the stack came to be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pytest_certload.stack.secret import DsnSecret, Secret, mask_dsn

__all__ = ["TARGET_NAMES", "DsnSecret", "ProviderKind", "Secret", "Stack", "Target", "loopback_target"]

ProviderKind = Literal["docker", "native", "external"]
TARGET_NAMES = ("nginx", "apache", "haproxy", "f5")
#: what every report that came from the stand-in says next to its verdicts (the one place it is spelt)
STANDIN_CAVEAT = "stand-in: functional check only, latencies are not certctl's"


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
    ``token``, ``dsn`` and ``bootstrap_token`` are :class:`Secret` (plain strings given here are
    wrapped): the repr masks them, :meth:`describe` leaves them out, pickling refuses them.
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
    #: --certload-pg-profile ("durable" or "fast"); None when the plugin did not start PostgreSQL
    pg_profile: str | None = None
    pg_settings: dict[str, str] = field(default_factory=dict)  # durability settings PostgreSQL reports
    pg_data: str | None = None  # where its data directory is: "disk (ext4)", "tmpfs", "docker volume", ...
    certctl_choice: str | None = None  # how it was asked: "default --certctl=auto", "--certctl-bin=..."
    certctl_source: str | None = None  # what answered and how it was found ("image REF (pulled)", ...)
    fallback_reason: str | None = None  # why --certctl=auto ran the stand-in instead of certctl
    #: what the server-side sampler (serverside/process.py) watches: the PIDs of certctl and the
    #: PostgreSQL postmaster (native), the container ids (docker); None when not ours (external)
    server_pid: int | None = None
    postgres_pid: int | None = None
    server_container: str | None = None
    postgres_container: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.token, Secret):
            self.token = Secret(self.token)
        if self.bootstrap_token is not None and not isinstance(self.bootstrap_token, Secret):
            self.bootstrap_token = Secret(self.bootstrap_token)
        if self.dsn is not None and not isinstance(self.dsn, DsnSecret):
            self.dsn = DsnSecret(self.dsn)  # printed with its password masked

    @property
    def target_label(self) -> str:
        """The label every report carries: 'certctl stand-in' or 'certctl <version>'."""
        if self.server == "stand-in":
            return "certctl stand-in"
        if self.server == "certctl":
            return f"certctl {self.server_version or '(version unknown)'}"
        return "certctl (unverified external deployment)"

    @property
    def caveat(self) -> str | None:
        """What must stand next to every verdict measured on this stack (None: nothing to add)."""
        return STANDIN_CAVEAT if self.server == "stand-in" else None

    @property
    def postgres_label(self) -> str | None:
        """'PostgreSQL 15.14, durable profile (fsync=on, ..., data on disk (ext4))', or None."""
        if self.pg_profile is None:
            return None
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.pg_settings.items()))
        where = f"data on {self.pg_data}" if self.pg_data else ""
        detail = "; ".join(p for p in (settings, where) if p)
        version = f"PostgreSQL {self.postgres_version}" if self.postgres_version else "PostgreSQL"
        return f"{version}, {self.pg_profile} profile" + (f" ({detail})" if detail else "")

    def describe(self) -> dict:
        """A JSON-safe description for summaries: no token, no password."""
        return {
            "provider": self.kind,
            "target": self.target_label,
            "caveat": self.caveat,
            "certctl_choice": self.certctl_choice,
            "certctl_source": self.certctl_source,
            "fallback_reason": self.fallback_reason,
            "certctl_url": mask_dsn(self.certctl_url),  # no userinfo password, should a URL carry one
            "server": self.server,
            "server_version": self.server_version,
            "postgres_version": self.postgres_version,
            "postgres_profile": self.pg_profile,
            "postgres_settings": dict(self.pg_settings),
            "postgres_data": self.pg_data,
            "postgres": self.postgres_label,
            "rate_limit_enabled": self.rate_limit_enabled,
            "owned": self.owned,
            "targets": {name: t.url for name, t in self.targets.items()},
            "skipped_targets": dict(self.skipped),
            "components": {
                name: {k: v for k, v in info.items() if k in ("command", "image", "ready_s", "version")}
                for name, info in self.components.items()
            },
        }
