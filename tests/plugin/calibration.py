"""A calibration target for the engine's tests: an HTTP(S) server with a known latency distribution.

It runs in its own process (``python calibration.py --port P [--cert C --key K] [--seed S]``) so its
CPU is not the generator's. It uses asyncio's own loop, whose timers never fire early, so every
response is held *at least* its injected delay.

Endpoints:
  GET|HEAD /fast            200 "ok" at once
  GET /latency              200 after a delay drawn from a seeded log-normal distribution (median
                            5 ms, sigma 0.6, capped at 100 ms); the drawn delay is echoed in
                            ``x-injected-delay-ns`` so a test knows the ground truth of every request
  GET /delay?ms=N           200 after N ms (without blocking other requests)
  GET /chunked?n=N          a chunked body of N chunks "chunk-<i>;"
  GET /eof                  a body delimited by closing the connection (no length, no chunking)
  GET /close                200 with ``Connection: close``
  GET /status/<code>        that status
  POST /echo                the request body back
  POST /stall?after=A&seconds=S   in A seconds, freeze the whole server (a blocking sleep) for S
                            seconds: a GC pause or a lock, as the generator sees it (one stall
                            at a time; arming again while one is pending is ignored)
  GET /health               200
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httptools

#: a pytester conftest giving inner sessions the ``server`` fixture (this server, in its own process:
#: in-process, its threads would take the GIL from the generator's loop and trip the saturation check)
SERVER_CONFTEST = f"""
import sys

import pytest

sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from calibration import start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    proc, url = start_server(tmp_path_factory.mktemp("calibration"))
    try:
        yield url
    finally:
        proc.stop()
"""

#: an inner session's conftest: a deployment the plugin did not start (--certload-stack=external)
EXTERNAL_STACK_CONFTEST = """
import pytest
from pytest_certload.stack.model import Secret, Stack

@pytest.fixture(scope="session")
def certload_stack():
    # a deployment the plugin did not start (what --certload-stack=external attaches to)
    return Stack(kind="external", certctl_url="https://127.0.0.1:9", token=Secret("t"), ca_bundle=None,
                 server="unknown", owned=False)
"""

#: an inner session's ini that keeps the generator's saturation check out of functional tests
RELAXED_HEALTH_INI = "[pytest]\ncertload_max_lag_p99_ms = 1000\ncertload_max_cpu_fraction = 8\n"

LATENCY_MEDIAN_S = 0.005
LATENCY_SIGMA = 0.6
LATENCY_CAP_S = 0.100


class _Server(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.headers: dict[str, str] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, b"bad request", close=True)

    def on_message_begin(self) -> None:
        self.url, self.body, self.headers = b"", [], {}

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        parts = urlsplit(self.url.decode("latin-1"))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        keep = self.parser.should_keep_alive()
        path = parts.path
        if path in ("/fast", "/health"):
            self._send(200, b"ok", head=method == "HEAD", close=not keep)
        elif path == "/latency":
            delay = self.state.next_delay()
            asyncio.get_running_loop().call_later(
                delay,
                self._send,
                200,
                b"ok",
                False,
                not keep,
                {"x-injected-delay-ns": str(round(delay * 1e9))},
            )
        elif path == "/delay":
            delay = float(query.get("ms", "100")) / 1000
            asyncio.get_running_loop().call_later(delay, self._send, 200, b"late", False, not keep)
        elif path == "/chunked":
            n = int(query.get("n", "3"))
            chunks = b"".join(
                f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in (f"chunk-{i};".encode() for i in range(n))
            )
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
            self.transport.write(head + chunks + b"0\r\n\r\n")  # type: ignore[union-attr]
        elif path == "/eof":
            self.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-eof-body")  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]
        elif path == "/close":
            self._send(200, b"closing", close=True)
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b"status", head=method == "HEAD", close=not keep)
        elif path == "/echo":
            self._send(200, b"".join(self.body), close=not keep)
        elif path == "/stall":
            self.state.arm_stall(float(query.get("after", "0")), float(query.get("seconds", "1")))
            self._send(200, b"armed", close=not keep)
        else:
            self._send(404, b"not found", close=not keep)

    def _send(
        self, status: int, body: bytes, head: bool = False, close: bool = False, extra: dict | None = None
    ) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: text/plain"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if close:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head else body))
        if close:
            self.transport.close()


class _State:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stall_armed = False

    def next_delay(self) -> float:
        return min(self.rng.lognormvariate(math.log(LATENCY_MEDIAN_S), LATENCY_SIGMA), LATENCY_CAP_S)

    def arm_stall(self, after: float, seconds: float) -> None:
        if self.stall_armed:
            return
        self.stall_armed = True
        asyncio.get_running_loop().call_later(after, self._stall, seconds)

    def _stall(self, seconds: float) -> None:
        time.sleep(seconds)  # a blocking sleep freezes the whole server: that is the point
        self.stall_armed = False


async def _serve(args: argparse.Namespace) -> None:
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    state = _State(args.seed)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(state), args.host, args.port, ssl=ctx, backlog=2048)
    print(f"calibration server on {args.host}:{args.port} tls={bool(ctx)}", flush=True)
    parent = os.getppid()

    def exit_with_parent() -> None:
        # a test run that is killed cannot stop us; we stop ourselves when our parent is gone
        if os.getppid() != parent:
            os._exit(0)
        loop.call_later(1.0, exit_with_parent)

    loop.call_later(1.0, exit_with_parent)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--seed", type=int, default=1)
    asyncio.run(_serve(p.parse_args(argv)))


# -- test-side helpers ----------------------------------------------------------------------------


def start_server(workdir: Path, *, tls: object | None = None, seed: int = 1):
    """Start the server in a subprocess; returns (ManagedProcess, base URL). ``tls`` is TLSMaterial."""
    import socket

    from pytest_certload.stack.ports import free_port
    from pytest_certload.stack.process import ManagedProcess

    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--seed", str(seed)]
    if tls is not None:
        argv += ["--cert", str(tls.server_cert), "--key", str(tls.server_key)]  # type: ignore[attr-defined]
    proc = ManagedProcess(f"calibration-{port}", argv, workdir / f"calibration-{port}.log").start()

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    try:
        proc.wait_ready(listening, timeout=15, what="listening")
    except BaseException:
        proc.stop()
        raise
    scheme = "https" if tls is not None else "http"
    return proc, f"{scheme}://127.0.0.1:{port}"


if __name__ == "__main__":
    main()
