"""One HTTP/2 connection for engine/http2.py: the ``h2`` state machine as an asyncio Protocol.

It owns the streams in flight on one connection: sends a request's HEADERS and DATA (as flow control
allows), collects the response, and fails streams rather than leaving them waiting: RST_STREAM
(``stream_reset: CODE``), GOAWAY (streams above ``last_stream_id``: ``connection_goaway``), a lost
connection (``connection_reset``/``connection_closed``), the request's deadline (``timeout``; a
connection silent since the timed-out stream began takes no new streams). ``slot_waiters`` queue
requests beyond the server's MAX_CONCURRENT_STREAMS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from time import monotonic_ns

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes, Settings

from pytest_certload.engine.http import _ParsedUrl

#: our receive window per stream and for the connection: large bodies flow without a stall per 64 KB
RECEIVE_WINDOW = 1 << 24
_HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
)


def _request_headers(
    method: str, u: _ParsedUrl, headers: dict[str, str] | None, body: bytes | None
) -> list[tuple[bytes, bytes]]:
    """A request's header list as bytes (h2 then skips its own encoding step)."""
    authority = u.host_header
    extra: list[tuple[bytes, bytes]] = []
    agent = True
    length = body is not None or method in _BODY_METHODS
    if headers:
        for k, v in headers.items():
            key = k.lower()
            if key == "host":
                authority = v
            elif key not in _HOP_HEADERS:
                extra.append((key.encode("latin-1"), str(v).encode("latin-1")))
                agent = agent and key != "user-agent"
                length = length and key != "content-length"
    out = [
        (b":method", method.encode()),
        (b":scheme", u.scheme.encode()),
        (b":authority", authority.encode("latin-1")),
        (b":path", u.target.encode("latin-1")),
    ]
    if agent:
        out.append((b"user-agent", b"pytest-certload"))
    out.extend(extra)
    if length:
        out.append((b"content-length", str(len(body) if body else 0).encode()))
    return out


class _NoLog:
    def debug(self, *args: object, **kwargs: object) -> None:
        pass


def _quicker_hpack() -> None:
    """Memoise hpack's Huffman decoder and drop its per-header debug logging (process-wide, once).

    Profiled against nginx: decoding the same Huffman-coded response header values (server,
    content-type, date) on every response and ~26 ``log.debug`` calls per request were ~40 % of
    the client's CPU. The decoder is a pure function of its bytes, so a cache changes no result.
    """
    import functools

    import hpack.hpack as hp

    if not getattr(hp, "_certload_quicker", False):
        hp.decode_huffman = functools.lru_cache(maxsize=4096)(hp.decode_huffman)
        hp.log = _NoLog()
        hp._certload_quicker = True


_quicker_hpack()


class _GracefulH2(H2Connection):
    """h2's client connection, but a graceful GOAWAY leaves the streams up to last_stream_id open.

    nginx (keepalive_requests) and Go servers shutting down send GOAWAY(NO_ERROR) and still answer
    the streams up to last_stream_id; h2 (4.x) closes its state machine on any GOAWAY and would
    reject those frames, even those in the same read. We open no new stream on it (``draining``).
    Relies on h2's frame dispatch calling ``self._receive_goaway_frame`` (h2/connection.py).
    """

    def _receive_goaway_frame(self, frame):  # type: ignore[no-untyped-def]
        result = super()._receive_goaway_frame(frame)
        if frame.error_code == ErrorCodes.NO_ERROR:
            self.state_machine.state = ConnectionState.CLIENT_OPEN
        return result


class H2Stream:
    __slots__ = (
        "body",
        "deadline_ns",
        "error",
        "first_byte_ns",
        "headers",
        "id",
        "pending",
        "start_ns",
        "status",
        "timer",
        "waiter",
    )

    def __init__(self, stream_id: int, waiter: asyncio.Future, start_ns: int) -> None:
        self.id = stream_id
        self.waiter = waiter
        self.start_ns = start_ns
        self.deadline_ns = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.error = ""
        self.first_byte_ns = 0
        self.pending: memoryview | None = None  # request body not yet sent (flow control)
        self.timer: asyncio.TimerHandle | None = None


class H2Conn(asyncio.Protocol):
    """One HTTP/2 connection: streams, flow control, GOAWAY; fails its streams, never hangs them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.h2 = _GracefulH2(config=_CONFIG)
        self.h2.local_settings = Settings(
            client=True,
            initial_values={SettingCodes.ENABLE_PUSH: 0, SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW},
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.slot_waiters: deque[asyncio.Future] = deque()
        self.started = False
        self.closed = False
        self.draining = False  # GOAWAY received or a stream timed out with the connection silent
        self.early: list[bytes] = []
        self.flush_due = False  # a write is scheduled: streams opened in one loop turn share it
        self.last_recv_ns = 0
        self.tls_version = ""
        # the server's first SETTINGS (its MAX_CONCURRENT_STREAMS): streams wait for it (Http2Client._open)
        self.settings = loop.create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self) -> None:
        """Send the preface and our SETTINGS (after ALPN said h2), then what arrived meanwhile."""
        self.started = True
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(RECEIVE_WINDOW - 65535)
        self._flush()
        for data in self.early:
            self.data_received(data)
        self.early.clear()

    def data_received(self, data: bytes) -> None:
        if not self.started:
            self.early.append(data)
            return
        now = self.last_recv_ns = monotonic_ns()
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._fail_all(f"protocol_error: {type(exc).__name__} {exc}"[:120])
            self._flush()
            self.abort()
            return
        streams = self.streams
        for ev in events:
            kind = type(ev)
            if kind is DataReceived:
                if ev.flow_controlled_length:
                    with contextlib.suppress(H2Error):  # a stream we reset meanwhile
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.body.append(ev.data)
            elif kind is ResponseReceived:
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.first_byte_ns = now
                    self._headers(s, ev.headers)
            elif kind is StreamEnded:
                s = streams.get(ev.stream_id)
                if s is not None:
                    self._finish(s)
            elif kind is StreamReset:
                s = streams.get(ev.stream_id)
                if s is not None:
                    s.error = f"stream_reset: {_code_name(ev.error_code)}"
                    self._finish(s)
            elif kind is WindowUpdated:
                for s in list(streams.values()):
                    if s.pending is not None:
                        self._send_body(s)
            elif kind is RemoteSettingsChanged:
                if not self.settings.done():
                    self.settings.set_result(None)
                self._wake_slots()
            elif kind is ConnectionTerminated:
                self._goaway(ev)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.settings.done():
            self.settings.set_exception(exc or ConnectionResetError("closed before the server's SETTINGS"))
            self.settings.exception()
        self._fail_all("connection_reset" if exc else "connection_closed")
        self._wake_slots(everyone=True)

    # -- requests ----------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and not self.draining

    def has_slot(self) -> bool:
        return len(self.streams) < self.h2.remote_settings.max_concurrent_streams

    def open_stream(
        self, method: str, u: _ParsedUrl, headers: dict[str, str] | None, body: bytes | None, deadline_ns: int
    ) -> H2Stream:
        h2 = self.h2
        stream_id = h2.get_next_available_stream_id()
        now = monotonic_ns()
        s = self.streams[stream_id] = H2Stream(stream_id, self.loop.create_future(), now)
        if headers is None and body is None:
            out = u.head_cache.get(("h2", method))  # type: ignore[assignment]
            if out is None:
                out = u.head_cache[("h2", method)] = _request_headers(method, u, None, None)  # type: ignore[assignment]
        else:
            out = _request_headers(method, u, headers, body)
        h2.send_headers(stream_id, out, end_stream=not body)
        if body:
            s.pending = memoryview(body)
            self._send_body(s)
        s.deadline_ns = deadline_ns
        s.timer = self.loop.call_later(max(deadline_ns - now, 0) / 1e9, self._timeout, s)
        if not self.flush_due:
            self.flush_due = True
            self.loop.call_soon(self._flush)
        return s

    def _send_body(self, s: H2Stream) -> None:
        h2 = self.h2
        data = s.pending
        while data is not None:
            window = min(h2.local_flow_control_window(s.id), h2.max_outbound_frame_size)
            if window <= 0:
                break  # the rest goes out on WINDOW_UPDATE
            chunk, data = data[:window], data[window:]
            last = not data
            h2.send_data(s.id, chunk.tobytes(), end_stream=last)
            if last:
                data = None
        s.pending = data

    def _headers(self, s: H2Stream, raw: list) -> None:
        h = s.headers
        for name, value in raw:
            if name == b":status":
                s.status = int(value)
                continue
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            old = h.get(key)
            h[key] = text if old is None else f"{old}, {text}"

    def _finish(self, s: H2Stream) -> None:
        if self.streams.pop(s.id, None) is None:
            return
        if s.timer is not None:
            s.timer.cancel()
        if not s.waiter.done():
            s.waiter.set_result(None)
        self._wake_slots()
        if self.draining and not self.streams:
            self.close()

    def _timeout(self, s: H2Stream) -> None:
        if s.id not in self.streams:
            return
        early = s.deadline_ns - monotonic_ns()
        if early > 0:  # the loop's timers have millisecond granularity: never time out before the deadline
            s.timer = self.loop.call_later(early / 1e9 + 0.0005, self._timeout, s)
            return
        s.error = "timeout"
        if self.last_recv_ns < s.start_ns:
            self.draining = True  # nothing heard since this stream began: no new streams on it
        self.reset(s)
        self._finish(s)

    def reset(self, s: H2Stream) -> None:
        """Cancel a stream (timeout, or its iteration was cancelled)."""
        if not self.closed:
            with contextlib.suppress(H2Error):
                self.h2.reset_stream(s.id, ErrorCodes.CANCEL)
            self._flush()
        if s.id in self.streams and s.error == "":
            s.error = "cancelled"
            self._finish(s)

    def _goaway(self, ev: ConnectionTerminated) -> None:
        self.draining = True
        last = ev.last_stream_id if ev.last_stream_id is not None else 0
        for s in [s for s in self.streams.values() if s.id > last]:
            s.error = f"connection_goaway: stream {s.id} > last_stream_id {last}, {_code_name(ev.error_code)}"
            self._finish(s)
        self._wake_slots(everyone=True)
        if not self.streams:
            self.close()

    def _fail_all(self, error: str) -> None:
        for s in list(self.streams.values()):
            s.error = error
            self._finish(s)

    def _wake_slots(self, everyone: bool = False) -> None:
        waiters = self.slot_waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                if not everyone:
                    return

    def _flush(self) -> None:
        self.flush_due = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                try:
                    self.h2.close_connection()
                    self._flush_unchecked()
                except H2Error:
                    pass
                self.transport.close()
        self._fail_all("connection_closed")
        self._wake_slots(everyone=True)

    def _flush_unchecked(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_all("connection_closed")
        self._wake_slots(everyone=True)


def _code_name(code: object) -> str:
    return getattr(code, "name", str(code))
