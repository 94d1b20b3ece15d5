"""TLS for the engine's new connections, with the handshake's crypto off the event-loop thread.

Why: asyncio's (and uvloop's) TLS runs ``SSL_do_handshake`` on the loop thread, so when several
scenarios open connections at the same instant their handshakes queue behind each other on our
one thread (issue 13 measured: four aligned new-connection scenarios against one nginx reported p50 7.90 ms
against 3.46 ms for one alone; the client side of a handshake costs 1.2-1.4 ms of CPU). That wait
is the generator's, not the server's.

:class:`TlsTransport` is a Protocol on the TCP side and a Transport on the application side
(``write``/``close``/``abort``/``get_extra_info``), built on ``ssl.SSLObject`` over memory BIOs.
The costly ``do_handshake`` step (the server's flight: key exchange, certificate verification)
runs in a small thread pool whenever two or more handshakes overlap (CPython releases the GIL inside
``SSL_do_handshake``, for memory BIOs too), so simultaneous handshakes use both cores instead of
queueing on the loop; a lone one runs on the loop and saves the thread hop (``HANDSHAKE_STEPS``).
After the handshake, records are encrypted and decrypted on the loop (symmetric crypto,
microseconds). While a step runs in a thread, bytes arriving from the server are held back
(a BIO is never touched by two threads at once).

``queue_ns`` is the time the handshake waited for the generator itself: each step's wait for a free
pool thread plus the wait for the loop to pick up its result (``client_queue_time``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic_ns

from pytest_certload.engine.connect import open_tcp

_READ_CHUNK = 256 * 1024
_POOL: ThreadPoolExecutor | None = None
#: handshake threads per process: enough to keep both cores of the dev VM busy while one waits
HANDSHAKE_THREADS = max(2, min(8, (os.cpu_count() or 2) * 2))
#: build the ClientHello on the loop (cheap) and only the server-flight steps (the costly ones) in a thread
INLINE_CLIENT_HELLO = True
#: "adaptive": a handshake that is the loop's only one in progress runs its step on the loop (no
#: thread hop: measured p50 0.3-0.45 ms lower, CPU 13 % lower than the pool); as soon as two or
#: more overlap, every step goes to the pool, so simultaneous handshakes don't wait for each other
#: on the loop. "pool": every step in the pool.
HANDSHAKE_STEPS = "adaptive"
_IN_PROGRESS: dict[int, int] = {}  # id(loop) -> handshakes between TCP connect and their end


def handshake_pool() -> ThreadPoolExecutor:
    """The process's handshake thread pool (created on first use, shared by every client)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(HANDSHAKE_THREADS, thread_name_prefix="certload-tls")
    return _POOL


def context_with_alpn(base: ssl.SSLContext, protocols: tuple[str, ...]) -> ssl.SSLContext:
    """A client context like ``base`` that offers ``protocols`` by ALPN (cached on ``base``).

    ALPN is set per context, and the HTTP/1.1 client shares ``base``: setting h2 on it would let a
    server pick HTTP/2 for a client that only speaks 1.1. The copy trusts the same CAs (rebuilt from
    make_ssl_context's arguments when it made ``base``, else from ``base.get_ca_certs``).
    """
    cache: dict = base.__dict__.setdefault("_certload_alpn", {})
    ctx = cache.get(protocols)
    if ctx is None:
        source = base.__dict__.get("_certload_source")
        if source is not None:  # as http.make_ssl_context built it
            ca_bundle, insecure = source
            ctx = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ders = [c for c in base.get_ca_certs(binary_form=True)]
            if ders:
                ctx.load_verify_locations(cadata=b"".join(ders))
            else:
                ctx.load_default_certs()
            ctx.check_hostname = base.check_hostname
            ctx.verify_mode = base.verify_mode
            ctx.verify_flags = base.verify_flags
            ctx.minimum_version = base.minimum_version
            ctx.maximum_version = base.maximum_version
        ctx.set_alpn_protocols(list(protocols))
        cache[protocols] = ctx
    return ctx


class TlsTransport(asyncio.Protocol):
    """TLS over a TCP transport; handshake steps in :func:`handshake_pool`, records on the loop."""

    __slots__ = (
        "_app",
        "_closing",
        "_counted",
        "_error",
        "_incoming",
        "_loop",
        "_outgoing",
        "_pending",
        "_sslobj",
        "_stepping",
        "_submitted_ns",
        "_tcp",
        "connected_ns",
        "handshake",
        "handshake_ns",
        "queue_ns",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None,
        app: asyncio.Protocol,
    ) -> None:
        self._loop = loop
        self._app = app
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = ssl_context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._tcp: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._stepping = False
        self._closing = False
        self._counted = False  # in _IN_PROGRESS
        self._error: BaseException | None = None
        self._submitted_ns = 0
        self.connected_ns = 0  # TCP connection established (monotonic ns)
        self.handshake_ns = 0  # handshake finished (monotonic ns)
        self.queue_ns = 0  # handshake time spent waiting for the generator (thread or loop)
        self.handshake: asyncio.Future = loop.create_future()

    # -- the TCP side (asyncio.Protocol) -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._tcp = transport  # type: ignore[assignment]
        self.connected_ns = monotonic_ns()
        key = id(self._loop)
        _IN_PROGRESS[key] = _IN_PROGRESS.get(key, 0) + 1
        self._counted = True
        if not INLINE_CLIENT_HELLO:
            self._submitted_ns = monotonic_ns()
            self._stepping = True
            self._submit()
            return
        try:  # the ClientHello (~70 us: a key share) here saves a thread hop (~80 us of latency)
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except BaseException as exc:
            self.handshake.set_exception(exc)
            self.handshake.exception()
            self._abort_tcp()
            return
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.handshake_ns:
            self._incoming.write(data)
            self._read()
        elif self._stepping:
            self._pending.append(data)
        elif not self.handshake.done():
            self._incoming.write(data)
            self._step()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._uncount()
        if not self.handshake.done():
            lost = exc or ConnectionResetError("connection closed during the TLS handshake")
            self.handshake.set_exception(lost)
            self.handshake.exception()  # retrieved: a cancelled waiter must not warn about it
        elif self.handshake_ns:
            self._app.connection_lost(exc or self._error)  # type: ignore[arg-type]

    # -- the handshake, one step at a time in a pool thread ------------------------------------------

    def _step(self) -> None:
        self._stepping = True  # from here until the step is done, arriving bytes wait in _pending
        self._submitted_ns = monotonic_ns()
        if HANDSHAKE_STEPS == "adaptive" and _IN_PROGRESS.get(id(self._loop), 0) <= 1:
            self._run_inline()
        else:
            self._submit()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            key = id(self._loop)
            left = _IN_PROGRESS.get(key, 1) - 1
            if left > 0:
                _IN_PROGRESS[key] = left
            else:
                _IN_PROGRESS.pop(key, None)

    def _submit(self) -> None:
        future = handshake_pool().submit(self._handshake_step)
        future.add_done_callback(self._from_thread)

    def _run_inline(self) -> None:
        try:
            begin, end, done = self._handshake_step()
        except BaseException as exc:
            self._stepping = False
            self._failed(exc)
            return
        self._stepping = False
        self._after_step(begin, end, end, done)

    def _handshake_step(self) -> tuple[int, int, bool]:  # in a pool thread, or inline on the loop
        begin = monotonic_ns()
        try:
            self._sslobj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        return begin, monotonic_ns(), done

    def _from_thread(self, future: Future) -> None:  # a pool thread
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._stepped, future)

    def _stepped(self, future: Future) -> None:
        back = monotonic_ns()
        self._stepping = False
        if self._closing or self.handshake.done():
            return
        try:
            begin, end, done = future.result()
        except BaseException as exc:
            self._failed(exc)
            return
        self._after_step(begin, end, back, done)

    def _failed(self, exc: BaseException) -> None:
        self._uncount()
        if not self.handshake.done():
            self.handshake.set_exception(exc)
            self.handshake.exception()
        self._abort_tcp()

    def _after_step(self, begin: int, end: int, back: int, done: bool) -> None:
        """A handshake step ran from ``begin`` to ``end``; the loop took it up at ``back``."""
        if self._closing or self.handshake.done():
            return
        self.queue_ns += (begin - self._submitted_ns) + (back - end)
        self._flush()
        if done:
            self._uncount()
            self.handshake_ns = back
            self.handshake.set_result(None)
            self._app.connection_made(self)  # type: ignore[arg-type]
            if self._pending:
                for data in self._pending:
                    self._incoming.write(data)
                self._pending.clear()
            if self._incoming.pending:
                self._read()
        elif self._pending:
            for data in self._pending:
                self._incoming.write(data)
            self._pending.clear()
            self._step()

    # -- records after the handshake ---------------------------------------------------------------------

    def _read(self) -> None:
        chunks = []
        sslobj = self._sslobj
        while True:
            try:
                chunk = sslobj.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the server's close_notify
                self._flush()
                if self._tcp is not None:
                    self._tcp.close()
                break
            except ssl.SSLError as exc:
                self._error = exc
                self._abort_tcp()
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not self._incoming.pending and not sslobj.pending():
                break
        if self._outgoing.pending:
            self._flush()  # e.g. a key update's answer
        if chunks:
            self._app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _flush(self) -> None:
        if self._outgoing.pending and self._tcp is not None and not self._tcp.is_closing():
            self._tcp.write(self._outgoing.read())

    # -- the application side (asyncio.Transport's methods the clients use) -------------------------

    def write(self, data: bytes) -> None:
        if self._closing or not self.handshake_ns:
            return
        view = memoryview(data)
        try:
            while view:
                n = self._sslobj.write(view)
                view = view[n:]
        except ssl.SSLError as exc:
            self._error = exc
            self._abort_tcp()
            return
        self._tcp.write(self._outgoing.read())  # type: ignore[union-attr]

    def writelines(self, chunks) -> None:
        self.write(b"".join(chunks))

    def close(self) -> None:
        """Send close_notify (when the handshake is done) and close the TCP connection."""
        if self._closing:
            return
        self._closing = True
        if self.handshake_ns:
            with contextlib.suppress(ssl.SSLError, ValueError):  # WantRead: no wait for the peer's
                self._sslobj.unwrap()
            self._flush()
        if self._tcp is not None:
            self._tcp.close()

    def abort(self) -> None:
        self._closing = True
        self._abort_tcp()

    def _abort_tcp(self) -> None:
        if self._tcp is not None:
            self._tcp.abort()

    def is_closing(self) -> bool:
        return self._closing or self._tcp is None or self._tcp.is_closing()

    def get_extra_info(self, name: str, default=None):
        if name == "ssl_object":
            return self._sslobj
        if name == "raw_transport":
            return self._tcp
        return self._tcp.get_extra_info(name, default) if self._tcp is not None else default

    def set_protocol(self, protocol: asyncio.Protocol) -> None:
        self._app = protocol

    def get_protocol(self) -> asyncio.Protocol:
        return self._app

    def pause_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.pause_reading()

    def resume_reading(self) -> None:
        if self._tcp is not None:
            self._tcp.resume_reading()

    @property
    def alpn(self) -> str | None:
        return self._sslobj.selected_alpn_protocol()

    @property
    def tls_version(self) -> str:
        return self._sslobj.version() or ""


async def open_tls(
    loop: asyncio.AbstractEventLoop,
    app: asyncio.Protocol,
    addresses: list[tuple],
    ssl_context: ssl.SSLContext,
    server_hostname: str | None,
) -> TlsTransport:
    """Connect to the first address that answers and finish the TLS handshake off the loop.

    ``app.connection_made(tls)`` is called when the handshake is done. Raises what connect or the
    handshake raised (OSError, ssl.SSLError); on any failure or cancellation the socket is dropped.
    """
    tls = TlsTransport(loop, ssl_context, server_hostname, app)  # connection_made only once connected
    await open_tcp(loop, tls, addresses)
    try:
        await tls.handshake
    except BaseException:
        tls.abort()
        raise
    return tls
