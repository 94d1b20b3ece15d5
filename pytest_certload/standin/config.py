"""Command line and environment of the stand-in process.

``python -m pytest_certload.standin --host H --port P --cert C --key K [--rate-limit on|off]
[--rate-limit-rps 50 --rate-limit-burst 100] [--latency ROUTE=MS ...] [--error-rate ROUTE=FRACTION ...]
[--max-body-size BYTES] [--pool-size N] [--db-wait SECONDS]``. Secrets come only from the environment:
``CERTLOAD_STANDIN_DSN``, ``CERTLOAD_STANDIN_TOKEN`` (the admin Bearer key) and
``CERTLOAD_STANDIN_BOOTSTRAP_TOKEN`` (accepted for parity with certctl's agent bootstrap token).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

# Route names usable with --latency / --error-rate ("*" means every route).
ROUTES = (
    "health",
    "ready",
    "create_certificate",
    "list_certificates",
    "get_certificate",
    "bulk_renew",
    "heartbeat",
    "work",
    "agent_csr",
    "agent_pickup",
    "agent_job_status",
    "verify_deployment",
    "update_issuer",
    "acme_directory",
    "acme_new_nonce",
    "acme_new_account",
    "acme_new_order",
    "acme_order",
    "acme_finalize",
    "acme_authz",
    "acme_cert",
    "acme_renewal_info",
)
ENV_DSN = "CERTLOAD_STANDIN_DSN"
ENV_TOKEN = "CERTLOAD_STANDIN_TOKEN"
ENV_BOOTSTRAP = "CERTLOAD_STANDIN_BOOTSTRAP_TOKEN"


class ConfigError(ValueError):
    """A bad option or missing secret; the message names the fix."""


@dataclass(frozen=True)
class StandinConfig:
    host: str
    port: int
    cert: Path
    key: Path
    dsn: str = field(repr=False)
    token: str = field(repr=False)
    bootstrap_token: str = field(default="", repr=False)
    rate_limit: bool = False
    rate_limit_rps: float = 50.0
    rate_limit_burst: int = 100
    latency_ms: dict[str, float] = field(default_factory=dict)
    error_rate: dict[str, float] = field(default_factory=dict)
    max_body_size: int = 1024 * 1024
    pool_size: int = 20
    db_wait_s: float = 15.0

    def latency_for(self, route: str) -> float:
        return self.latency_ms.get(route, self.latency_ms.get("*", 0.0))

    def error_rate_for(self, route: str) -> float:
        return self.error_rate.get(route, self.error_rate.get("*", 0.0))


def _route_values(items: list[str], option: str, lo: float, hi: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        route, sep, raw = item.partition("=")
        if not sep or (route not in ROUTES and route != "*"):
            raise ConfigError(
                f"{option} {item!r}: expected ROUTE=VALUE with ROUTE one of {', '.join(ROUTES)} or '*'"
            )
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{option} {item!r}: {raw!r} is not a number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{option} {item!r}: value must be between {lo:g} and {hi:g}")
        out[route] = value
    return out


def parse_config(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> StandinConfig:
    """Parse argv and the environment; raise ConfigError naming the problem and the fix."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m pytest_certload.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="PEM server certificate")
    parser.add_argument("--key", type=Path, required=True, help="PEM private key")
    parser.add_argument("--rate-limit", choices=("on", "off"), default="off")
    parser.add_argument("--rate-limit-rps", type=float, default=50.0)
    parser.add_argument("--rate-limit-burst", type=int, default=100)
    parser.add_argument("--latency", action="append", default=[], metavar="ROUTE=MS")
    parser.add_argument("--error-rate", action="append", default=[], metavar="ROUTE=FRACTION")
    parser.add_argument("--max-body-size", type=int, default=1024 * 1024)
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--db-wait", type=float, default=15.0, help="seconds to wait for PostgreSQL at start")
    args = parser.parse_args(argv)
    for name in ("cert", "key"):
        path: Path = getattr(args, name)
        if not path.is_file():
            raise ConfigError(
                f"--{name} {path}: no such file (pass the PEM {name} the server should present)"
            )
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 1-65535")
    if args.rate_limit_rps <= 0 or args.rate_limit_burst < 1:
        raise ConfigError("--rate-limit-rps must be > 0 and --rate-limit-burst >= 1")
    if args.max_body_size < 1 or args.pool_size < 1:
        raise ConfigError("--max-body-size and --pool-size must be positive")
    dsn = env.get(ENV_DSN, "")
    token = env.get(ENV_TOKEN, "")
    if not dsn:
        raise ConfigError(
            f"{ENV_DSN} is not set: export the PostgreSQL DSN (never pass it on the command line)"
        )
    if not token:
        raise ConfigError(f"{ENV_TOKEN} is not set: export the admin Bearer token the stand-in should accept")
    return StandinConfig(
        host=args.host,
        port=args.port,
        cert=args.cert,
        key=args.key,
        dsn=dsn,
        token=token,
        bootstrap_token=env.get(ENV_BOOTSTRAP, ""),
        rate_limit=args.rate_limit == "on",
        rate_limit_rps=args.rate_limit_rps,
        rate_limit_burst=args.rate_limit_burst,
        latency_ms=_route_values(args.latency, "--latency", 0, 600_000),
        error_rate=_route_values(args.error_rate, "--error-rate", 0, 1),
        max_body_size=args.max_body_size,
        pool_size=args.pool_size,
        db_wait_s=max(0.0, args.db_wait),
    )
