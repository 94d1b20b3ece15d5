"""Connector tier: TLS handshakes against the target sidecars (k6.js ``*_handshake``).

Each iteration opens a new TCP + TLS connection: the original reused keep-alive connections per VU
and so measured ~50 handshakes in a 500-request run. Connect, TLS and time-to-first-byte are
recorded apart (``http_req_connecting``, ``http_req_tls_handshaking``, ``http_req_waiting``).
k6.js's check (``<target> 2xx``) is recorded as the ``checks`` rate.
"""

from __future__ import annotations

from pytest_certload.stack.model import Stack


def handshake(stack: Stack, target_name: str):
    target = stack.targets[target_name]
    url = target.url.rstrip("/") + target.health_path
    check_name = f"{target_name} 2xx"  # k6.js's check, e.g. 'nginx 2xx'

    async def iteration(ctx) -> None:
        resp = await ctx.request("GET", url, new_connection=True, tags={"target_type": target_name})
        ctx.check(check_name, 200 <= resp.status < 300)

    return iteration
