"""Opening a connection, shared by both clients: resolve an origin, connect, name a failure.

HttpClient (engine/http.py) and Http2Client (engine/http2.py) open their TCP connections the same
way, and a failed request's ``error`` tag must name the same failure alike for both protocols
(``connection_refused``, ``tls_verify_failed: ...``), so thresholds and reports read one vocabulary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl

#: (address family, (host, port)) to connect to, in the resolver's order
Addresses = list[tuple[int, tuple]]


async def resolve(host: str, port: int) -> Addresses:
    """An IP literal as is; a name through the loop's resolver (loopback aliases here)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [(info[0], info[4][:2]) for info in infos]
    return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (host, port))]


async def open_tcp(
    loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, addresses: Addresses
) -> asyncio.Transport:
    """Connect ``protocol`` to the first address that answers; raises the last address's OSError."""
    last_exc: OSError | None = None
    for family, addr in addresses:
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, family=family, host=addr[0], port=addr[1]
            )
        except OSError as exc:
            last_exc = exc
            continue
        return transport  # type: ignore[return-value]
    raise last_exc or OSError("no address to connect to")


def connect_error(exc: OSError) -> str:
    """The ``error`` of a request whose connection could not be opened (the part before ':' is its tag)."""
    if isinstance(exc, TimeoutError):  # the request's deadline passed while connecting
        return "timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls_verify_failed: {exc.verify_message}"[:120]
    if isinstance(exc, ssl.SSLError):
        return f"tls_error: {exc.reason or exc}"[:120]
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, socket.gaierror):
        return f"dns_error: {exc}"[:120]
    if isinstance(exc, ConnectionError):
        return f"connection_error: {type(exc).__name__}"
    return f"connect_error: {exc.strerror or exc}"[:120]
