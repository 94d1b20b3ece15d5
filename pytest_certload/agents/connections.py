"""Established TCP connections to certctl's port, counted from the generator's side and from certctl's.

Generator side: the sockets of this process (psutil) whose remote end is certctl's address -- what a
fleet with one connection per agent must hold. certctl's side, where the stack owns the process:
native -- the sockets of certctl's PID whose local port is its listening port; docker -- the
container's ``/proc/net/tcp{,6}`` read through ``docker exec`` (ESTABLISHED rows on the port most
connections are on, since the container's internal port is not the published one). Otherwise None
and the reason.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psutil

from pytest_certload.serverside.process import proc_net_tcp  # the one /proc/net/tcp parser
from pytest_certload.stack.model import Stack


def certctl_port(stack: Stack) -> int:
    parts = urlsplit(stack.certctl_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def generator_side(port: int, pid: int | None = None) -> int:
    """Established connections of process ``pid`` (default: this one) to remote ``port``."""
    proc = psutil.Process(pid)
    return sum(
        1
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port
    )


def server_side(stack: Stack) -> tuple[int | None, str]:
    """(established connections certctl holds on its port, how it was counted) or (None, why not)."""
    if stack.server_pid is not None:
        port = certctl_port(stack)
        try:
            proc = psutil.Process(stack.server_pid)
            conns = proc.net_connections(kind="tcp")
        except (psutil.Error, OSError) as exc:
            return None, f"certctl's process {stack.server_pid} unreadable: {type(exc).__name__}"
        n = sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
        return n, f"psutil on {stack.server} PID {stack.server_pid}, local port {port}"
    if stack.server_container is not None:
        return _container_side(stack.server_container)
    return None, "certctl's process is not the stack's (external): its side is not counted"


def _container_side(container_id: str) -> tuple[int | None, str]:
    try:
        import docker

        container = docker.from_env().containers.get(container_id)
        code, out = container.exec_run(["cat", "/proc/net/tcp", "/proc/net/tcp6"])
    except Exception as exc:  # docker missing, container gone, exec refused
        return None, f"docker exec in {container_id[:12]} failed: {type(exc).__name__}"
    if code != 0:
        return None, f"docker exec cat /proc/net/tcp in {container_id[:12]} exited {code}"
    listening, established = proc_net_tcp(out.decode("ascii", "replace"))
    counts = {port: established.get(port, 0) for port in listening}
    if not counts:
        return None, f"no listening socket in {container_id[:12]}'s /proc/net/tcp"
    port = max(counts, key=lambda p: counts[p])
    return counts[port], f"/proc/net/tcp in container {container_id[:12]}, local port {port}"
