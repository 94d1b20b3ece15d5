"""``python -m pytest_certload.standin``: set up the schema, then serve HTTPS until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import sys
import time

import psycopg
from aiohttp import web

from pytest_certload.standin.app import build_app
from pytest_certload.standin.config import ConfigError, StandinConfig, parse_config
from pytest_certload.standin.schema import ensure_demo_rows, ensure_schema

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


class RedactingFormatter(logging.Formatter):
    """Formats log records, then removes the DSN, its password and the tokens from the text."""

    def __init__(self, fmt: str, secrets_: list[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted((s for s in secrets_ if s), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def redact(text: str, secrets_: list[str]) -> str:
    for secret in secrets_:
        text = text.replace(secret, "***")
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def server_ssl_context(config: StandinConfig) -> ssl.SSLContext:
    """TLS 1.3 only, like certctl's listener."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(config.cert), str(config.key))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def prepare_database(dsn: str, timeout: float = 15.0) -> None:
    """ensure_schema + ensure_demo_rows, waiting up to ``timeout`` s for PostgreSQL to accept us."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                ensure_schema(conn)
                ensure_demo_rows(conn)
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # retry interval while PostgreSQL starts


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"certctl stand-in: {exc}", file=sys.stderr)
        return 2
    secrets_ = [config.dsn, config.token, config.bootstrap_token]
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets_))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        ssl_ctx = server_ssl_context(config)
    except (ssl.SSLError, OSError) as exc:
        print(f"certctl stand-in: cannot load --cert/--key: {exc}", file=sys.stderr)
        return 2
    try:
        prepare_database(config.dsn, config.db_wait_s)
    except psycopg.Error as exc:
        detail = redact(f"{type(exc).__name__}: {exc}", secrets_)
        print(f"certctl stand-in: database setup failed: {detail}", file=sys.stderr)
        return 1
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    print(
        f"certctl stand-in (test double) listening on https://{config.host}:{config.port}"
        f" rate_limit={'on' if config.rate_limit else 'off'}",
        flush=True,
    )
    web.run_app(
        build_app(config),
        host=config.host,
        port=config.port,
        ssl_context=ssl_ctx,
        access_log=None,
        print=None,
        loop=loop,
        backlog=1024,
        keepalive_timeout=60,  # certctl's IdleTimeout
        # Go's net/http accepts request lines and headers up to 1 MiB in total; aiohttp's 8 KiB
        # default would answer long query strings with its own 400 instead of certctl's behaviour.
        max_line_size=1 << 20,
        max_field_size=1 << 20,
        shutdown_timeout=5.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
