"""Request bodies, read the way certctl's handlers read them.

certctl wraps every body in ``http.MaxBytesReader`` and decodes it with ``json.NewDecoder``: past
the limit the decoder fails unless the first JSON value ended inside it. aiohttp's own body limit
would answer with its own 413 instead, so the app switches that off and every handler reads through
:func:`decode_struct` with the stand-in's ``--max-body-size``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pytest_certload.standin.gocompat import decode_first_value, struct_fields


async def read_limited(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the body, and whether there was more (MaxBytesReader)."""
    if not request.body_exists:
        return b"", False
    buf = bytearray()
    while len(buf) <= limit:
        chunk = await request.content.read(limit + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
    body, truncated = bytes(buf[:limit]), len(buf) > limit
    request["body_read"] = b"" if truncated else body  # the audit row's body hash (audit.py)
    return body, truncated


async def decode_struct(request: web.Request, names: tuple[str, ...], limit: int) -> dict[str, Any]:
    """The body's first JSON value mapped onto struct fields ``names``; DecodeError as Go fails."""
    body, _truncated = await read_limited(request, limit)
    # Past the limit Go's decoder errors unless the first value ended inside it: same here.
    return struct_fields(decode_first_value(body), names)
