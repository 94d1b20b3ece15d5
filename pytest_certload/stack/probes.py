"""Readiness probes that prove identity: TLS verified against our CA, our leaf, our process.

A port on a shared machine may be taken by a stranger; a bare "got a 200" could pass against it.
"""

from __future__ import annotations

import http.client
import json
import ssl
from urllib.parse import urlsplit

import psutil

from pytest_certload.stack.secret import Secret, bearer_header
from pytest_certload.stack.tls import presented_fingerprint


def https_get(
    base_url: str, path: str, ca_file: str | None, token: Secret | str | None = None, timeout: float = 3.0
) -> tuple[int, bytes]:
    """GET ``base_url + path`` verifying the server against ``ca_file``; returns (status, body).

    ``token`` (a :class:`Secret`; a plain str is wrapped) becomes the Bearer header only once the
    TLS connection stands, so a refused or failed connection has no frame holding it.
    """
    parts = urlsplit(base_url)
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=ctx, timeout=timeout)
    secret = Secret(token) if token else None
    del token
    try:
        conn.connect()
        _send_get(conn, path, secret)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _send_get(conn: http.client.HTTPSConnection, path: str, token: Secret | None) -> None:
    failure: OSError | None = None
    try:
        conn.request("GET", path, headers=bearer_header(token) if token else {})
    except OSError as exc:  # re-raised without http.client's frames (their locals hold the header)
        failure = ConnectionError(f"GET {path}: {type(exc).__name__}: {exc}")
    if failure is not None:
        raise failure from None


def certctl_ready(base_url: str, ca_file: str) -> bool:
    """Both /health and /ready answer 200 over TLS that verifies against our CA."""
    return (
        https_get(base_url, "/health", ca_file)[0] == 200 and https_get(base_url, "/ready", ca_file)[0] == 200
    )


def certctl_version(base_url: str, ca_file: str | None) -> str | None:
    """``version`` from GET /api/v1/version (None when the server has no such route)."""
    try:
        status, body = https_get(base_url, "/api/v1/version", ca_file)
        return str(json.loads(body).get("version")) if status == 200 else None
    except (OSError, ValueError, AttributeError):
        return None


def presents_leaf(host: str, port: int, fingerprint: str) -> bool:
    """The listener at host:port completes a handshake presenting exactly our leaf."""
    return presented_fingerprint(host, port) == fingerprint


def process_listens(pid: int, port: int) -> bool:
    """``pid`` or one of its descendants holds a listening TCP socket on ``port``.

    Every service of a session presents the same leaf, so the fingerprint alone cannot tell our
    nginx from our haproxy; the listening socket can.
    """
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    inspected = 0
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        inspected += 1
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return True
    return inspected == 0 and root.is_running()  # sockets not inspectable here: the leaf check must do


def is_ours(pid: int, host: str, port: int, fingerprint: str) -> bool:
    """Our process listens on host:port and the listener presents our leaf."""
    return presents_leaf(host, port, fingerprint) and process_listens(pid, port)  # cheap check first
