"""The stack's command-line options, parsed once into plain data the providers read.

Which certctl answers is one choice, ``--certctl=auto|standin|image:REF|bin:PATH|url:URL``; the older
options ``--certctl-bin``, ``--certctl-image`` and ``--certctl-url`` are spellings of ``bin:``,
``image:`` and ``url:``, and two of them naming different servers are a usage error naming both.
``auto`` is resolved when a test first needs the stack (:mod:`pytest_certload.stack.choice`), never here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_certload.stack.model import TARGET_NAMES
from pytest_certload.stack.postgres import DEFAULT_PG_PROFILE, PG_PROFILES, PROFILE_TEXT
from pytest_certload.stack.secret import DsnSecret, Secret

DEFAULT_IMAGES = {
    "postgres": "postgres:16-alpine",
    "nginx": "nginx:1.27-alpine",
    "apache": "httpd:2.4-alpine",
    "haproxy": "haproxy:2.9-alpine",
}
#: the published certctl-server image --certctl=auto pulls when no binary is given: the newest release
#: (tag v2.1.7, 2026-05-15). The suite was built against certctl's source at 151107c (2026-05-16),
#: which no release contains yet (47 commits after v2.1.7, among them migration 000047, the audit
#: hash chain); v2.1.7 itself was checked here built from its tag's source (README, "Against a real
#: certctl"). Override with --certctl=image:REF. The one place this reference is written.
RELEASE_IMAGE = "ghcr.io/certctl-io/certctl-server:v2.1.7"
CERTCTL_KINDS = ("auto", "standin", "image", "bin", "url")
CERTCTL_FORMS = "auto, standin, image:REF, bin:PATH or url:URL"
#: the older spellings of --certctl=KIND:VALUE
CERTCTL_SPELLINGS = {"--certctl-bin": "bin", "--certctl-image": "image", "--certctl-url": "url"}


@dataclass
class StackOptions:
    """Everything a provider needs to know from the command line.

    The token and the DSN are kept as :class:`Secret` (plain strings given here are wrapped), so
    the repr of the options - printed by ``--tb=long -l`` in any frame that holds them - masks them.
    """

    provider: Literal["docker", "native", "external"] | None = None  # None: docker if an engine answers
    #: which certctl: "auto" until resolved (stack/choice.py), then "standin", "image", "bin" or "url"
    certctl: Literal["auto", "standin", "image", "bin", "url"] = "auto"
    certctl_given: str = "default --certctl=auto"  # how the choice was made, for messages and reports
    certctl_source: str | None = None  # set when resolved: what will answer and how it was found
    fallback_reason: str | None = None  # set when auto resolved to the stand-in: why
    pg_profile: Literal["durable", "fast"] = "durable"
    certctl_bin: Path | None = None
    certctl_migrations: Path | None = None
    certctl_image: str | None = None
    certctl_url: str | None = None
    certctl_token: Secret | None = None
    certctl_ca: Path | None = None
    dsn: DsnSecret | None = None
    targets: dict[str, str] = field(default_factory=dict)
    allow_external_load: bool = False
    docker_network: Literal["auto", "bridge", "host"] = "auto"
    images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    base_image: str | None = None  # one local image with postgres+nginx+apache2+haproxy+python3 for all
    rate_limit: bool = False
    workdir: Path | None = None
    ready_timeout: float = 60.0
    #: a real certctl-agent binary to run beside simulated agents (stack/real_agents.py); None: not given
    certctl_agent_bin: Path | None = None

    def __post_init__(self) -> None:
        if self.certctl_token is not None and not isinstance(self.certctl_token, Secret):
            self.certctl_token = Secret(self.certctl_token)
        if self.dsn is not None and not isinstance(self.dsn, DsnSecret):
            self.dsn = DsnSecret(self.dsn)

    @property
    def server_kind(self) -> str:
        """What the providers start: "bin", "image", "standin" (or "url": nothing, attach).

        Options reach the providers resolved (stack/choice.py); unresolved "auto" means what auto
        takes first among what is given, without looking for an image.
        """
        if self.certctl != "auto":
            return self.certctl
        if self.certctl_bin is not None:
            return "bin"
        return "image" if self.certctl_image is not None else "standin"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("certload", "certload: the stack under test")
    group.addoption(
        "--certload-stack",
        choices=("docker", "native", "external"),
        default=None,
        help="who provides the stack (default: docker when a Docker engine answers, else native)",
    )
    group.addoption(
        "--certctl",
        default=None,
        metavar="CHOICE",
        help=f"which certctl answers: {CERTCTL_FORMS}. auto (default): a binary when given "
        f"(--certctl-bin or env CERTLOAD_CERTCTL_BIN), else the published image {RELEASE_IMAGE} "
        "(docker stack; found locally or pulled), else the certctl stand-in, with a banner saying why. "
        "standin: the test double (functional checks only: its latencies are not certctl's)",
    )
    group.addoption(
        "--certctl-bin",
        default=None,
        help="certctl-server binary to run (env CERTLOAD_CERTCTL_BIN); the same as --certctl=bin:PATH",
    )
    group.addoption(
        "--certctl-agent-bin",
        default=None,
        help="a real certctl-agent binary, built outside this repository (env CERTLOAD_CERTCTL_AGENT_BIN): "
        "tests/scale/test_agent_fidelity.py runs a few beside the simulated agents; skipped without it",
    )
    group.addoption(
        "--certctl-migrations",
        default=None,
        help="certctl's migrations/ directory (env CERTLOAD_CERTCTL_MIGRATIONS)",
    )
    group.addoption(
        "--certctl-image",
        default=None,
        help=f"certctl-server image for the docker stack (e.g. {RELEASE_IMAGE}); the same as "
        "--certctl=image:REF",
    )
    group.addoption(
        "--certctl-url",
        default=None,
        help="external stack: certctl base URL (https://...); the same as --certctl=url:URL",
    )
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
    group.addoption(
        "--certload-pg-profile",
        choices=PG_PROFILES,
        default=DEFAULT_PG_PROFILE,
        help=f"PostgreSQL of the native and docker stacks. durable (default): {PROFILE_TEXT['durable']}. "
        f"fast: {PROFILE_TEXT['fast']} (for CI)",
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


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


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


def parse_certctl(value: str) -> tuple[str, str | None]:
    """``--certctl``'s value -> (kind, value): ('auto', None), ('image', 'REF'), ..."""
    text = value.strip()
    if text in ("auto", "standin", "stand-in"):
        return ("standin" if text == "stand-in" else text), None
    kind, sep, rest = text.partition(":")
    if sep and rest and kind in ("image", "bin", "url"):
        return kind, rest
    raise pytest.UsageError(f"--certctl={value}: expected {CERTCTL_FORMS}")


def certctl_choice(get: Callable[[str], Any]) -> tuple[str, str | None, str]:
    """(kind, value, how it was given) from --certctl and its older spellings; 'auto' when none.

    ``--certctl=auto`` next to ``--certctl-bin=PATH`` is no conflict (auto takes a given binary);
    two options naming different servers are a usage error naming both.
    """
    given: list[tuple[str, str, str]] = []
    raw = get("--certctl")
    if raw is not None:
        kind, value = parse_certctl(raw)
        if kind != "auto":
            given.append((f"--certctl={raw}", kind, value or ""))
    for option, kind in CERTCTL_SPELLINGS.items():
        value = get(option)
        if value:
            given.append((f"{option}={value}", kind, value))
    if not given:
        return "auto", None, "--certctl=auto" if raw is not None else "default --certctl=auto"

    def key(item: tuple[str, str, str]) -> tuple[str, str]:
        kind, value = item[1], item[2]
        return kind, str(_path(value)) if kind == "bin" else value.rstrip("/")

    first = given[0]
    for other in given[1:]:
        if key(other) != key(first):
            raise pytest.UsageError(
                f"{first[0]} and {other[0]} name two different certctls: give one of them"
            )
    return first[1], first[2] or None, first[0]


def options_from_config(config: pytest.Config) -> StackOptions:
    """Read and check the options; bad input is a UsageError naming the fix."""
    get = config.getoption
    kind, value, given = certctl_choice(get)
    env_bin = os.environ.get("CERTLOAD_CERTCTL_BIN")
    binary: Path | None = None
    if kind == "bin":
        binary = _path(value)
    elif kind == "auto" and env_bin:
        binary, given = _path(env_bin), f"{given}, binary from env CERTLOAD_CERTCTL_BIN"
    migrations_option = get("--certctl-migrations")
    if binary is not None:
        migrations = _path(migrations_option or os.environ.get("CERTLOAD_CERTCTL_MIGRATIONS"))
    elif kind in ("image", "auto"):  # an image's own migrations unless given (the env's are the binary's)
        migrations = _path(migrations_option)
    else:
        migrations = None
    opts = StackOptions(
        provider=get("--certload-stack"),
        certctl=kind,  # type: ignore[arg-type]
        certctl_given=given,
        pg_profile=get("--certload-pg-profile"),
        certctl_bin=binary,
        certctl_migrations=migrations,
        certctl_image=value if kind == "image" else None,
        certctl_url=value if kind == "url" else None,
        certctl_token=_secret(get("--certctl-token") or os.environ.get("CERTLOAD_CERTCTL_TOKEN")),
        certctl_ca=_path(get("--certctl-ca")),
        dsn=DsnSecret(get("--certload-dsn")) if get("--certload-dsn") else None,
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
    opts.certctl_agent_bin = agent_binary(get("--certctl-agent-bin"))
    check_certctl(opts)
    return opts


def agent_binary(option: str | None) -> Path | None:
    """--certctl-agent-bin, else env CERTLOAD_CERTCTL_AGENT_BIN; a name that is no executable file is a
    UsageError naming where it came from."""
    named = f"--certctl-agent-bin {option}" if option else None
    if not option and os.environ.get("CERTLOAD_CERTCTL_AGENT_BIN"):
        option = os.environ["CERTLOAD_CERTCTL_AGENT_BIN"]
        named = f"env CERTLOAD_CERTCTL_AGENT_BIN={option}"
    path = _path(option)
    if path is not None and not (path.is_file() and os.access(path, os.X_OK)):
        raise pytest.UsageError(
            f"{named}: no executable file there (give a certctl-agent binary built outside the repo)"
        )
    return path


def check_certctl(opts: StackOptions) -> None:
    """The certctl choice against the files it names and the stack it needs (UsageError otherwise)."""
    given = opts.certctl_given
    if opts.certctl_bin is not None:
        if given.startswith("--certctl-bin"):
            origin, named = "--certctl-bin", f"--certctl-bin {opts.certctl_bin}"
        elif given.startswith("--certctl=bin:"):
            origin, named = "--certctl=bin:PATH", given
        else:
            origin, named = "env CERTLOAD_CERTCTL_BIN", f"env CERTLOAD_CERTCTL_BIN={opts.certctl_bin}"
        if not opts.certctl_bin.is_file():
            raise pytest.UsageError(f"{named}: no such file")
        if opts.certctl_migrations is None:
            raise pytest.UsageError(
                f"{origin} needs --certctl-migrations (or env CERTLOAD_CERTCTL_MIGRATIONS): "
                "the directory with certctl's *.up.sql files"
            )
    if opts.certctl_migrations is not None and not any(opts.certctl_migrations.glob("*.up.sql")):
        raise pytest.UsageError(f"--certctl-migrations {opts.certctl_migrations}: no *.up.sql files there")
    stack = f"--certload-stack={opts.provider}"
    if opts.certctl == "url":
        if opts.provider not in (None, "external"):
            raise pytest.UsageError(
                f"{given} attaches to a running certctl, {stack} starts one: give one of them "
                "(--certload-stack=external, or leave it out)"
            )
        opts.provider = "external"
    elif opts.provider == "external":
        conflict = f", not {given}" if opts.certctl != "auto" else ""
        raise pytest.UsageError(
            f"--certload-stack=external needs --certctl-url (or --certctl=url:URL){conflict} "
            "(and --certctl-token)"
        )
    elif opts.certctl == "image":
        if opts.provider == "native":
            raise pytest.UsageError(
                f"{given} runs in the docker stack, {stack} runs local processes: give one of them "
                "(for a native certctl: --certctl=bin:PATH)"
            )
        opts.provider = "docker"
