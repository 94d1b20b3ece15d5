"""Http2Client (engine/http2.py) against a tiny h2 server on 127.0.0.1 (H2TestServer, below).

The server (the ``h2`` library, in a thread of its own) answers ``/ok`` (200 "ok"), ``/echo`` (the
request body's length, and a 200 KB body back), ``/slow`` (after 0.2 s), ``/hold`` (held until three
are open: then GOAWAY with the lowest as last_stream_id, which is answered), ``/reset`` (RST_STREAM),
``/close`` (headers, then the server drops the connection). It counts connections and the most
streams it saw open at once; ``settings_delay`` holds its first SETTINGS back (a slow server).
"""

from __future__ import annotations

import asyncio
import ssl
import threading

import calibration  # tests/plugin/calibration.py
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, RequestReceived, StreamEnded
from h2.settings import SettingCodes, Settings

from pytest_certload.engine import ExecutorSpec, ScenarioRun, make_ssl_context, run_phase
from pytest_certload.engine.http2 import Http2Client
from pytest_certload.engine.phase import event_loop_factory
from pytest_certload.stack.tls import make_tls_material

# -- the test server ---------------------------------------------------------------------------------


class _Proto(asyncio.Protocol):
    def __init__(self, server: H2TestServer) -> None:
        self.server = server
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.paths: dict[int, str] = {}
        self.bodies: dict[int, int] = {}
        self.held: list[int] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections += 1
        self.early: list[bytes] | None = []  # the client's bytes before our preface went out
        if self.server.settings_delay:  # a server slow to send its SETTINGS: the server's time
            asyncio.get_running_loop().call_later(self.server.settings_delay, self.start)
        else:
            self.start()

    def start(self) -> None:
        self.conn.local_settings = Settings(
            client=False, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams}
        )
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())
        early, self.early = self.early or [], None
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.early is not None:
            self.early.append(data)
            return
        for ev in self.conn.receive_data(data):
            if isinstance(ev, RequestReceived):
                self.paths[ev.stream_id] = dict(ev.headers)[":path"]
                self.bodies[ev.stream_id] = 0
                self.server.open_now += 1
                self.server.most_open = max(self.server.most_open, self.server.open_now)
            elif isinstance(ev, DataReceived):
                self.bodies[ev.stream_id] += len(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self.handle(ev.stream_id)
        self.flush()

    def flush(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def respond(self, sid: int, body: bytes) -> None:
        self.server.open_now -= 1
        self.conn.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
        self.send_body(sid, memoryview(body))

    def send_body(self, sid: int, data: memoryview) -> None:
        while data:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:  # wait for the client's WINDOW_UPDATE (it opens 16 MB: not reached here)
                asyncio.get_running_loop().call_later(0.01, self.send_body, sid, data)
                return
            chunk, data = data[:window], data[window:]
            self.conn.send_data(sid, chunk.tobytes(), end_stream=not data)
        self.flush()

    def handle(self, sid: int) -> None:
        path = self.paths[sid]
        loop = asyncio.get_running_loop()
        if path == "/ok":
            self.respond(sid, b"ok")
        elif path == "/echo":
            self.respond(sid, str(self.bodies[sid]).encode().ljust(200_000, b" "))
        elif path == "/slow":
            loop.call_later(0.2, lambda: (self.respond(sid, b"slow"), self.flush()))
        elif path == "/hold" and self.server.goaways:  # after the GOAWAY: answered at once
            self.respond(sid, b"ok")
        elif path == "/hold":
            self.held.append(sid)
            if len(self.held) == 3:
                first = min(self.held)
                self.server.goaways += 1
                self.conn.close_connection(last_stream_id=first)
                self.flush()
                # h2 refuses to send after its own GOAWAY; answer the one stream by hand-made frames
                self.transport.write(_headers_frame_ok(self, first))
        elif path == "/reset":
            self.server.open_now -= 1
            self.conn.reset_stream(sid, ErrorCodes.INTERNAL_ERROR)
        elif path == "/close":
            self.conn.send_headers(sid, [(":status", "200"), ("content-length", "100")])
            self.flush()
            loop.call_later(0.05, self.transport.abort)


def _headers_frame_ok(proto: _Proto, sid: int) -> bytes:
    """HEADERS (:status 200, END_STREAM) for ``sid`` encoded with the connection's own HPACK state."""
    block = proto.conn.encoder.encode([(":status", "200"), ("content-length", "0")])
    length = len(block)
    header = length.to_bytes(3, "big") + bytes([0x1, 0x4 | 0x1]) + sid.to_bytes(4, "big")
    return header + block


class H2TestServer:
    """Runs the server in its own thread and loop; ``url`` is https://127.0.0.1:<port>."""

    def __init__(
        self,
        cert: str,
        key: str,
        max_streams: int = 100,
        alpn: tuple[str, ...] = ("h2",),
        settings_delay: float = 0.0,
    ) -> None:
        self.settings_delay = settings_delay
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(list(alpn))
        self.max_streams = max_streams
        self.connections = 0
        self.goaways = 0
        self.open_now = 0
        self.most_open = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def __enter__(self) -> H2TestServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("h2 test server did not start")
        return self

    def __exit__(self, *exc) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = await self._loop.create_server(lambda: _Proto(self), "127.0.0.1", 0, ssl=self.ctx)
            self.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            self._ready.set()
            await self._stop.wait()
            server.close()

        asyncio.run(main())


# -- tests ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_material(tmp_path_factory.mktemp("tls"))


def run(coro_fn):
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), 30))


def server(tls, **kw) -> H2TestServer:
    return H2TestServer(str(tls.server_cert), str(tls.server_key), **kw)


def test_streams_multiplex_on_one_connection_within_max_concurrent_streams(tls):
    with server(tls, max_streams=2) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert))
            try:
                return await asyncio.gather(*(client.request("GET", srv.url + "/slow") for _ in range(6)))
            finally:
                client.close()

        responses = run(go)
    assert [r.status for r in responses] == [200] * 6, [r.error for r in responses]
    assert all(r.http_version == "2" and r.body == b"slow" for r in responses)
    assert srv.connections == 1  # six requests, one TCP connection
    assert srv.most_open == 2  # the server's MAX_CONCURRENT_STREAMS held: the rest queued
    opened = [r for r in responses if r.new_connection]
    assert len(opened) == 1 and opened[0].tls_ns > 0 and opened[0].connecting_ns > 0
    assert all(r.tls_ns == 0 for r in responses if not r.new_connection)
    assert all(r.tls_version.startswith("TLS") for r in responses)


def test_flow_control_with_a_body_larger_than_the_initial_window(tls):
    body = b"x" * 300_000  # the server's initial stream window is 65,535 bytes
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert))
            try:
                return await client.request("POST", srv.url + "/echo", body=body)
            finally:
                client.close()

        resp = run(go)
    assert resp.status == 200, resp.error
    assert int(resp.body.strip()) == len(body)  # every byte arrived, through WINDOW_UPDATEs
    assert len(resp.body) == 200_000  # and a 200 KB response came back whole


def test_goaway_retries_unprocessed_streams_once_on_a_new_connection(tls):
    """Streams above GOAWAY's last_stream_id were never processed: sent again once, as Go's client does."""
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert))
            try:
                held = await asyncio.gather(*(client.request("GET", srv.url + "/hold") for _ in range(3)))
                after = await client.request("GET", srv.url + "/ok")
                return held, after, client.connections_opened, client.retries
            finally:
                client.close()

        held, after, opened, retries = run(go)
    assert [r.status for r in held] == [200, 200, 200], [r.error for r in held]
    assert retries == 2 and srv.goaways == 1  # two unprocessed streams, each sent once more
    assert after.status == 200 and not after.new_connection  # the retries' connection serves on
    assert opened == 2 and srv.connections == 2


def test_goaway_fails_a_stream_already_retried(tls):
    """A retried request meeting a second GOAWAY fails (counted), it is not sent a third time."""
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert))
            try:
                srv.goaways = 0
                held = await asyncio.gather(
                    *(
                        client._request("GET", srv.url + "/hold", None, None, False, None, retry=False)
                        for _ in range(3)
                    )
                )
                return held, client.retries
            finally:
                client.close()

        held, retries = run(go)
    assert sorted(r.status for r in held) == [0, 0, 200], [r.error for r in held]
    assert sum(r.error.startswith("connection_goaway") for r in held) == 2
    assert retries == 0


def test_reset_and_dropped_connection_fail_in_flight_requests_without_hanging(tls):
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert), timeout=10)
            try:
                reset = await client.request("GET", srv.url + "/reset")
                mixed = await asyncio.gather(
                    client.request("GET", srv.url + "/slow"), client.request("GET", srv.url + "/close")
                )
                return reset, mixed
            finally:
                client.close()

        reset, mixed = run(go)
    assert reset.status == 0 and reset.error.startswith("stream_reset: INTERNAL_ERROR")
    # the server dropped the connection mid-response: both streams on it fail, well before the timeout
    assert [r.status for r in mixed] == [0, 0]
    assert all(r.error.startswith("connection_") for r in mixed), [r.error for r in mixed]
    assert all((r.end_ns - r.start_ns) < 2e9 for r in mixed)


def test_timeout_bounds_a_request_the_server_never_answers(tls):
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert), timeout=0.05)
            try:
                return await client.request("GET", srv.url + "/slow")
            finally:
                client.close()

        resp = run(go)
    assert resp.status == 0 and resp.error == "timeout"
    assert 0.05e9 <= resp.end_ns - resp.start_ns < 0.15e9


def test_auto_speaks_1_1_when_the_server_only_does_1_1(tmp_path, tls):
    proc, url = calibration.start_server(tmp_path, tls=tls)  # HTTP/1.1 only, no ALPN
    try:

        async def go():
            client = Http2Client(make_ssl_context(tls.ca_cert), http_version="auto")
            strict = Http2Client(make_ssl_context(tls.ca_cert))
            try:
                first = await client.request("GET", url + "/fast")
                second = await client.request("GET", url + "/fast")
                refused = await strict.request("GET", url + "/fast")
                return first, second, refused, client.connections_opened
            finally:
                client.close()
                strict.close()

        first, second, refused, opened = run(go)
    finally:
        proc.stop()
    assert first.status == 200 and first.http_version == "1.1", first.error
    assert first.new_connection and first.tls_ns > 0  # the handshake is the request's, handed over
    assert second.status == 200 and second.http_version == "1.1" and not second.new_connection
    assert opened == 1  # the first connection was reused by the 1.1 fallback, not thrown away
    assert refused.status == 0 and refused.error.startswith("tls_error: no h2")


@pytest.mark.parametrize("version", ["1.1", "2", "auto"])
def test_scenario_http_version_tags_every_sample(tls, version):
    with server(tls) as srv:

        async def it(ctx):
            await ctx.request("GET", srv.url + "/ok")

        spec = ExecutorSpec.from_options(
            {"executor": "constant-vus", "vus": 3, "duration": "0.3s", "http_version": version}
        )
        # "1.1": the h2 server speaks only h2, so the 1.1 scenario fails, tagged 1.1
        m = run_phase([ScenarioRun("s", spec, it)], ssl_context=make_ssl_context(tls.ca_cert))
    tagged = {
        dict(tags).get("http_version") for (name, tags) in m.samples.trends if name == "http_req_duration"
    }
    assert tagged == {"1.1" if version == "1.1" else "2"}
    if version != "1.1":
        assert m.samples.select_counter("http_reqs", {"status": "200"}) > 3
        assert srv.connections == 3  # one connection per VU
    queue = [v for (name, _), v in m.samples.trends.items() if name == "client_queue_time"]
    assert sum(len(v) for v in queue) == sum(
        len(v) for (name, _), v in m.samples.trends.items() if name == "http_req_duration"
    )
    assert m.health.queue_samples > 0


def test_marker_http_version_and_timeout_are_validated_at_collection():
    from pytest_certload.scenario_options import ScenarioOptionError, parse_scenario_options

    base = {"executor": "constant-vus", "vus": 1, "duration": "1s"}
    parsed = parse_scenario_options({**base, "http_version": "auto", "timeout": "2s"})
    assert parsed.spec.http_version == "auto" and parsed.spec.timeout == 2.0
    default = parse_scenario_options(base).spec
    assert default.http_version == "1.1" and default.timeout is None  # the engine's 30 s
    with pytest.raises(ScenarioOptionError, match=r"http_version: '3' is not supported; use '1.1', '2'"):
        parse_scenario_options({**base, "http_version": "3"})
    with pytest.raises(ScenarioOptionError, match=r"timeout: '0s' must be a positive duration"):
        parse_scenario_options({**base, "timeout": "0s"})


def test_scenario_timeout_fails_requests_and_the_phase_ends_on_time(tmp_path):
    from pytest_certload.engine.http import DEFAULT_TIMEOUT

    assert DEFAULT_TIMEOUT == 30.0  # certctl's agent: http.Client{Timeout: 30 * time.Second}
    proc, url = calibration.start_server(tmp_path)
    try:

        async def it(ctx):
            await ctx.request("GET", url + "/delay?ms=3000")

        spec = ExecutorSpec.from_options(
            {
                "executor": "constant-vus",
                "vus": 2,
                "duration": "0.5s",
                "timeout": "0.2s",
                "graceful_stop": "1s",
            }
        )
        m = run_phase([ScenarioRun("slow", spec, it)])
    finally:
        proc.stop()
    assert m.samples.select_counter("http_reqs", {"error": "timeout"}) >= 4
    assert m.samples.select_counter("http_reqs", {"status": "200"}) == 0
    durations = m.samples.select_trend("http_req_duration") / 1e9
    assert 0.19 < durations.max() < 0.4
    assert m.meta["wall_seconds"] < 1.5  # the phase ended on time, not after the 3 s responses


def test_refused_connection_is_a_counted_connect_error(tls):
    from pytest_certload.stack.ports import free_port

    async def go():
        client = Http2Client(make_ssl_context(tls.ca_cert), timeout=5)
        try:
            return await asyncio.gather(
                *(client.request("GET", f"https://127.0.0.1:{free_port()}/") for _ in range(3))
            )
        finally:
            client.close()

    responses = run(go)
    assert [(r.status, r.error, r.http_version) for r in responses] == [(0, "connection_refused", "2")] * 3


def test_a_server_certificate_from_another_ca_is_a_tls_verify_failure(tls, tmp_path):
    other = make_tls_material(tmp_path / "other")
    with server(tls) as srv:

        async def go():
            client = Http2Client(make_ssl_context(other.ca_cert))
            try:
                return await client.request("GET", srv.url + "/ok")
            finally:
                client.close()

        resp = run(go)
    assert resp.status == 0 and resp.error.startswith("tls_verify_failed"), resp.error
    assert srv.connections == 0  # the server never got as far as HTTP/2


def test_client_queue_time_is_the_generators_wait_only(tls):
    """client_queue_time = the generator's own waits: not the server's slow SETTINGS, not its slow
    answer, not the VU's previous request. Each of those is 0.2-0.3 s of server time here, so a
    queue that mixed any of them in would read >= 200 ms; the generator's own wait is ~ms."""
    with server(tls, settings_delay=0.3) as srv:

        async def it(ctx):
            await ctx.request("GET", srv.url + "/slow")  # 0.2 s of server time, after the SETTINGS wait
            await ctx.request("GET", srv.url + "/slow")

        spec = ExecutorSpec.from_options(
            {"executor": "constant-vus", "vus": 2, "duration": "1s", "http_version": "2"}
        )
        m = run_phase([ScenarioRun("s", spec, it)], ssl_context=make_ssl_context(tls.ca_cert))
    assert m.samples.select_rate("http_req_failed")[0] == 0
    durations = m.samples.select_trend("http_req_duration") / 1e6
    queue = m.samples.select_trend("client_queue_time") / 1e6
    assert srv.connections == 2 and len(durations) >= 6
    assert durations.min() >= 190  # every request holds >= 0.2 s of server time
    assert durations.max() >= 490  # each VU's first request also waited 0.3 s for the SETTINGS
    assert queue.max() < 50, f"client_queue_time {sorted(queue)} ms mixes in the server's time"
