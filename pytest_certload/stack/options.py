"""The stack's command-line options, parsed once into plain data the providers read."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from pytest_certload.stack.model import TARGET_NAMES

DEFAULT_IMAGES = {
    "postgres": "postgres:16-alpine",
    "nginx": "nginx:1.27-alpine",
    "apache": "httpd:2.4-alpine",
    "haproxy": "haproxy:2.9-alpine",
}
USER_DEFAULT_CERTCTL_IMAGE = "ghcr.io/certctl-io/certctl-server:latest"


@dataclass
class StackOptions:
    """Everything a provider needs to know from the command line (secrets excluded)."""

    provider: Literal["docker", "native", "external"] | None = None  # None: docker if an engine answers
    certctl_bin: Path | None = None
    certctl_migrations: Path | None = None
    certctl_image: str | None = None
    certctl_url: str | None = None
    certctl_token: str | None = None
    certctl_ca: Path | None = None
    dsn: str | None = None
    targets: dict[str, str] = field(default_factory=dict)
    allow_external_load: bool = False
    docker_network: Literal["auto", "bridge", "host"] = "auto"
    images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    base_image: str | None = None  # one local image with postgres+nginx+apache2+haproxy+python3 for all
    rate_limit: bool = False
    workdir: Path | None = None
    ready_timeout: float = 60.0

    @property
    def wants_real_certctl(self) -> bool:
        return self.certctl_bin is not None or self.certctl_image is not None


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("certload", "certload: the stack under test")
    group.addoption(
        "--certload-stack",
        choices=("docker", "native", "external"),
        default=None,
        help="who provides the stack (default: docker when a Docker engine answers, else native)",
    )
    group.addoption(
        "--certctl-bin",
        default=None,
        help="certctl-server binary to run (env CERTLOAD_CERTCTL_BIN); without it and without "
        "--certctl-image the certctl stand-in runs instead",
    )
    group.addoption(
        "--certctl-migrations",
        default=None,
        help="certctl's migrations/ directory (env CERTLOAD_CERTCTL_MIGRATIONS)",
    )
    group.addoption(
        "--certctl-image",
        default=None,
        help=f"certctl-server image for the docker stack (e.g. {USER_DEFAULT_CERTCTL_IMAGE})",
    )
    group.addoption("--certctl-url", default=None, help="external stack: certctl base URL (https://...)")
    group.addoption(
        "--certctl-token", default=None, help="external stack: admin API key (or env CERTLOAD_CERTCTL_TOKEN)"
    )
    group.addoption("--certctl-ca", default=None, help="external stack: CA bundle that verifies certctl")
    group.addoption("--certload-dsn", default=None, help="external stack: PostgreSQL DSN (optional)")
    group.addoption(
        "--certload-target",
        action="append",
        default=[],
        metavar="NAME=URL",
        help=f"external stack: a TLS target, NAME one of {', '.join(TARGET_NAMES)} (repeatable)",
    )
    group.addoption(
        "--certload-allow-external-load",
        action="store_true",
        default=False,
        help="allow scale and seeding scenarios against an external stack",
    )
    group.addoption(
        "--certload-docker-network",
        choices=("auto", "bridge", "host"),
        default=os.environ.get("CERTLOAD_DOCKER_NETWORK", "auto"),
        help="docker stack: a user-defined bridge with ports published on 127.0.0.1 (the norm), or "
        "host networking (loopback only; needed where the engine runs without a bridge). "
        "auto (default): bridge when the engine has its default bridge network, else host",
    )
    for name, image in DEFAULT_IMAGES.items():
        group.addoption(
            f"--certload-{name}-image", default=None, help=f"docker stack: {name} image ({image})"
        )
    group.addoption(
        "--certload-base-image",
        default=None,
        help="docker stack: one local image holding postgresql, nginx, apache2, haproxy and "
        "python3 (e.g. certload/base:bookworm), used for every component",
    )
    group.addoption(
        "--certload-rate-limit",
        choices=("on", "off"),
        default="off",
        help="certctl's API rate limiter (default off: capacity tests)",
    )
    group.addoption("--certload-workdir", default=None, help="where configs, logs and TLS files go")
    group.addoption(
        "--certload-ready-timeout",
        type=float,
        default=60.0,
        help="seconds each component may take to become ready (default 60)",
    )


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def parse_targets(values: list[str]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for item in values:
        name, sep, url = item.partition("=")
        if not sep or name not in TARGET_NAMES or not url.startswith("https://"):
            raise pytest.UsageError(
                f"--certload-target {item!r}: expected NAME=https://HOST:PORT with NAME one of "
                f"{', '.join(TARGET_NAMES)}"
            )
        targets[name] = url
    return targets


def options_from_config(config: pytest.Config) -> StackOptions:
    """Read and check the options; bad input is a UsageError naming the fix."""
    get = config.getoption
    opts = StackOptions(
        provider=get("--certload-stack"),
        certctl_bin=_path(get("--certctl-bin") or os.environ.get("CERTLOAD_CERTCTL_BIN")),
        certctl_migrations=_path(
            get("--certctl-migrations") or os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS")
        ),
        certctl_image=get("--certctl-image"),
        certctl_url=get("--certctl-url"),
        certctl_token=get("--certctl-token") or os.environ.get("CERTLOAD_CERTCTL_TOKEN"),
        certctl_ca=_path(get("--certctl-ca")),
        dsn=get("--certload-dsn"),
        targets=parse_targets(get("--certload-target")),
        allow_external_load=get("--certload-allow-external-load"),
        docker_network=get("--certload-docker-network"),
        base_image=get("--certload-base-image") or os.environ.get("CERTLOAD_DOCKER_BASE_IMAGE"),
        rate_limit=get("--certload-rate-limit") == "on",
        workdir=_path(get("--certload-workdir")),
        ready_timeout=get("--certload-ready-timeout"),
    )
    for name in DEFAULT_IMAGES:
        if get(f"--certload-{name}-image"):
            opts.images[name] = get(f"--certload-{name}-image")
    if opts.certctl_bin is not None:
        if not opts.certctl_bin.is_file():
            raise pytest.UsageError(f"--certctl-bin {opts.certctl_bin}: no such file")
        if opts.certctl_migrations is None:
            raise pytest.UsageError(
                "--certctl-bin needs --certctl-migrations (or env CERTLOAD_CERTCTL_MIGRATIONS): "
                "the directory with certctl's *.up.sql files"
            )
    if opts.certctl_migrations is not None and not any(opts.certctl_migrations.glob("*.up.sql")):
        raise pytest.UsageError(f"--certctl-migrations {opts.certctl_migrations}: no *.up.sql files there")
    if opts.provider == "external" and not opts.certctl_url:
        raise pytest.UsageError("--certload-stack=external needs --certctl-url (and --certctl-token)")
    if opts.certctl_url and opts.provider is None:
        opts.provider = "external"
    return opts
