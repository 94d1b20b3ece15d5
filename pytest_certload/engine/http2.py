"""HTTP/2 over TLS for timed requests: the ``h2`` protocol library on the engine's TLS transport.

:class:`Http2Client` has :class:`~pytest_certload.engine.http.HttpClient`'s interface (constructor,
``request(method, url, *, headers, body, new_connection, timeout) -> Response``, ``close()``) and
returns the same :class:`Response` (``http_version == "2"``). It keeps ONE connection per origin and
multiplexes every request on it as a stream, as Go's transport does for certctl's agent
(``ForceAttemptHTTP2``). So one connection per simulated agent is one client per agent::

    client = Http2Client(ssl_context, timeout=30.0)           # this agent's connection, opened lazily
    resp = await client.request("POST", url, headers=h, body=b)  # never raises for network failures
    ...
    client.close()                                             # at the end of the phase

Beyond the server's MAX_CONCURRENT_STREAMS requests queue for a stream; request bodies follow flow
control (DATA as WINDOW_UPDATEs allow); on GOAWAY the streams above ``last_stream_id`` fail with
``connection_goaway`` (the server never processed them) and new requests open a new connection;
RST_STREAM fails its stream (``stream_reset: CODE``); a lost connection fails every stream in flight
(``connection_reset``/``connection_closed``). Every request has a deadline (``timeout``).
``http_version="auto"`` offers h2 and http/1.1 by ALPN and speaks what the server picked; an origin
that picked 1.1 is served by an internal :class:`HttpClient` from then on (the first connection is
handed over, not wasted). Handshakes run off the loop (engine/tls.py).
"""

from __future__ import annotations

import asyncio
import ssl
from time import monotonic_ns
from typing import Unpack

from h2.exceptions import H2Error

from pytest_certload.engine.connect import connect_error, open_tcp, resolve
from pytest_certload.engine.h2conn import H2Conn
from pytest_certload.engine.http import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT,
    HttpClient,
    RequestOptions,
    Response,
    _ParsedUrl,
    make_ssl_context,
    parse_url,
)
from pytest_certload.engine.tls import TlsTransport, context_with_alpn, open_tls

#: errors of requests the server never processed: safe to send again (RFC 9113 §8.7)
UNPROCESSED = ("connection_goaway", "stream_reset: REFUSED_STREAM")


class Http2Client:
    """HTTP/2 client bound to the running loop: one multiplexed connection per origin.

    ``http_version="auto"`` offers h2 and http/1.1 by ALPN (Go's ``ForceAttemptHTTP2``) and uses
    what the server picked; ``"2"`` offers h2 only and fails a connection the server won't speak h2
    on (``tls_error: no h2``). ``max_connections_per_origin`` only bounds the 1.1 fallback's pool.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections_per_origin: int = DEFAULT_MAX_CONNECTIONS,
        http_version: str = "2",
    ) -> None:
        if http_version not in ("2", "auto"):
            raise ValueError(f"Http2Client: http_version must be '2' or 'auto', got {http_version!r}")
        self._base_context = ssl_context
        self.timeout = timeout
        self.max_connections = max_connections_per_origin
        self.http_version = http_version
        self._alpn = ("h2", "http/1.1") if http_version == "auto" else ("h2",)
        self._context: ssl.SSLContext | None = None
        self._conns: dict[tuple, H2Conn] = {}
        self._connecting: dict[tuple, asyncio.Task] = {}
        self._every: set[H2Conn] = set()
        self._urls: dict[str, _ParsedUrl] = {}
        self._addresses: dict[tuple, list[tuple]] = {}
        self._h1: HttpClient | None = None
        self._h1_origins: set[tuple] = set()
        self.connections_opened = 0  # TCP connections this client opened (tests count them)
        self.retries = 0  # requests sent again because the server never processed them (GOAWAY)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            base = self._base_context if self._base_context is not None else make_ssl_context()
            self._context = context_with_alpn(base, self._alpn)
        return self._context

    async def request(self, method: str, url: str, **options: Unpack[RequestOptions]) -> Response:
        """Send one request as a stream and wait for the whole response; never raises for failures.

        A request the server never processed (a stream above GOAWAY's ``last_stream_id``, or
        ``REFUSED_STREAM``) is sent once more, as Go's client does (RFC 9113 §8.7 makes that safe):
        after GOAWAY on a new connection, after REFUSED_STREAM on the origin's connection while it is
        usable; its duration counts from the first attempt, and ``retries`` counts it.
        """
        headers, body = options.get("headers"), options.get("body")
        new_connection, timeout = options.get("new_connection", False), options.get("timeout")
        return await self._request(method, url, headers, body, new_connection, timeout, retry=True)

    async def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        new_connection: bool,
        timeout: float | None,
        retry: bool,
    ) -> Response:
        start = monotonic_ns()
        resp = Response()
        resp.start_ns = start
        resp.http_version = "2"
        resp.new_connection = new_connection
        deadline = start + int((self.timeout if timeout is None else timeout) * 1e9)
        u = self._urls.get(url)
        if u is None:
            u = parse_url(self._urls, url, resp)
            if u is None:
                return resp
        if u.origin in self._h1_origins:
            return await self._h1_request(method, url, headers, body, new_connection, timeout, start)
        conn = None
        while conn is None:
            if new_connection:
                conn = await self._open(u, resp, deadline)
            else:
                conn = await self._shared(u, resp, deadline)
            if conn is None:
                if resp.error == "http/1.1":  # ALPN picked 1.1: this origin is the fallback's now
                    resp.error = ""
                    opened = resp if resp.new_connection else None
                    args = (method, url, headers, body, new_connection, timeout, start, opened)
                    return await self._h1_request(*args)
                resp.end_ns = monotonic_ns()
                return resp
            while conn.usable and not conn.has_slot():  # MAX_CONCURRENT_STREAMS reached: queue
                waiter = conn.loop.create_future()
                conn.slot_waiters.append(waiter)
                try:
                    async with asyncio.timeout(max(deadline - monotonic_ns(), 0) / 1e9):
                        await waiter
                except TimeoutError:
                    resp.error = "timeout"
                    resp.end_ns = monotonic_ns()
                    return resp
            if not conn.usable:
                conn = None  # GOAWAY or lost while we waited: another connection
        resp.tls_version = conn.tls_version
        try:
            s = conn.open_stream(method, u, headers, body, deadline)
        except H2Error as exc:
            resp.error = f"protocol_error: {type(exc).__name__}"[:120]
            resp.end_ns = monotonic_ns()
            return resp
        sent = resp.sent_ns = monotonic_ns()
        try:
            await s.waiter
        except asyncio.CancelledError:
            conn.reset(s)
            raise
        end = resp.end_ns = monotonic_ns()
        if s.error and retry and s.error.startswith(UNPROCESSED) and end < deadline:
            if new_connection:
                conn.close()  # the retry opens its own
            self.retries += 1
            left = (deadline - end) / 1e9
            again = await self._request(method, url, headers, body, new_connection, left, retry=False)
            again.start_ns = start  # the client's own retry is part of this request's time
            return again
        if s.error:
            resp.error = s.error
        else:
            resp.status = s.status
            resp.headers = s.headers
            resp.body = s.body[0] if len(s.body) == 1 else b"".join(s.body)
        resp.waiting_ns = (s.first_byte_ns or end) - sent
        if new_connection:
            conn.close()
        return resp

    async def _shared(self, u: _ParsedUrl, resp: Response, deadline: int) -> H2Conn | None:
        """The origin's connection; the first request to need one opens it, the rest wait for it."""
        conn = self._conns.get(u.origin)
        if conn is not None and conn.usable:
            return conn
        task = self._connecting.get(u.origin)
        opener = task is None
        if opener:
            task = self._connecting[u.origin] = asyncio.get_running_loop().create_task(
                self._open(u, Response(), monotonic_ns() + int(self.timeout * 1e9))
            )
            task.add_done_callback(lambda _t, o=u.origin: self._connecting.pop(o, None))
        try:
            async with asyncio.timeout(max(deadline - monotonic_ns(), 0) / 1e9):
                conn = await asyncio.shield(task)  # type: ignore[arg-type]
        except TimeoutError:
            resp.error = "timeout"
            return None
        info = task.result_resp  # type: ignore[union-attr]
        if opener:
            resp.connecting_ns, resp.tls_ns, resp.queue_ns = info.connecting_ns, info.tls_ns, info.queue_ns
            resp.new_connection = True
        if conn is None:
            resp.error = info.error
            return None
        self._conns[u.origin] = conn
        return conn

    async def _open(self, u: _ParsedUrl, resp: Response, deadline: int) -> H2Conn | None:
        """Connect, TLS with ALPN (handshake off the loop), HTTP/2 preface; None with resp.error set."""
        task = asyncio.current_task()
        if task is not None:
            task.result_resp = resp  # type: ignore[attr-defined]  # read by the requests waiting on it
        loop = asyncio.get_running_loop()
        conn = H2Conn(loop)
        self._every = {c for c in self._every if not c.closed}  # forget connections gone meanwhile
        try:
            async with asyncio.timeout(max(deadline - monotonic_ns(), 0) / 1e9):
                addresses = self._addresses.get(u.origin)
                if addresses is None:
                    addresses = self._addresses[u.origin] = await resolve(u.host, u.port)
                t0 = monotonic_ns()
                if u.scheme == "https":
                    tls = await open_tls(loop, conn, addresses, self.ssl_context, u.host)
                    self.connections_opened += 1
                    resp.connecting_ns = tls.connected_ns - t0
                    resp.tls_ns = tls.handshake_ns - tls.connected_ns
                    resp.queue_ns = tls.queue_ns
                    conn.tls_version = resp.tls_version = tls.tls_version
                    if tls.alpn != "h2":
                        if self.http_version == "auto":
                            self._adopt_h1(u, tls)
                            resp.error = "http/1.1"
                            return None
                        tls.close()
                        resp.error = f"tls_error: no h2 by ALPN (server chose {tls.alpn or 'nothing'})"
                        return None
                else:  # h2c with prior knowledge (plain-text test servers)
                    await open_tcp(loop, conn, addresses)
                    self.connections_opened += 1
                    resp.connecting_ns = monotonic_ns() - t0
                conn.start()
                self._every.add(conn)
                await conn.settings  # the server's limits first: its MAX_CONCURRENT_STREAMS may be < ours
        except OSError as exc:  # TimeoutError (the deadline), ssl.SSLError, refused, DNS, ...
            resp.error = connect_error(exc)
        if resp.error:
            conn.abort()
            return None
        return conn

    def _adopt_h1(self, u: _ParsedUrl, tls: TlsTransport) -> None:
        self._h1_origins.add(u.origin)
        if self._h1 is None:
            self._h1 = HttpClient(
                self._base_context, timeout=self.timeout, max_connections_per_origin=self.max_connections
            )
        self._h1.adopt(u, tls)

    async def _h1_request(
        self, method, url, headers, body, new_connection, timeout, start, opened: Response | None = None
    ) -> Response:
        assert self._h1 is not None
        resp = await self._h1.request(
            method, url, headers=headers, body=body, new_connection=new_connection, timeout=timeout
        )
        resp.start_ns = start
        if opened is not None:  # this request opened (and handed over) the connection
            resp.connecting_ns, resp.tls_ns = opened.connecting_ns, opened.tls_ns
            resp.queue_ns = opened.queue_ns
            resp.new_connection = True
        return resp

    def close(self) -> None:
        """Drop every connection (their streams fail as connection_closed) and the 1.1 fallback."""
        for task in list(self._connecting.values()):
            task.cancel()
        for conn in list(self._every):
            conn.abort()
        self._every.clear()
        self._conns.clear()
        if self._h1 is not None:
            self._h1.close()
