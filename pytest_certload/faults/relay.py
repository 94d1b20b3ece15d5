"""A TCP relay that listens inside a network namespace and forwards to a port on this host's loopback.

``python -m pytest_certload.faults.relay --netns /var/run/netns/NAME --listen 10.x.y.2 --port P
--upstream-port Q --delay-ms D``: the listening socket is made inside the namespace (``setns``
for that one call), every upstream connection on the host's own loopback, so the generator's
traffic crosses the namespace's veth link (where ``tc``/``iptables`` act on it) while certctl
keeps listening on 127.0.0.1. SIGUSR1 turns a one-way delay of D ms on (each chunk is forwarded D
ms after it arrived, in order, pipelined), SIGUSR2 turns it off: the link's delay where the
kernel has no ``netem`` (``faults/network.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import time

CLONE_NEWNET = 0x40000000
CHUNK = 65536


def listen_in_namespace(netns_path: str, host: str, port: int) -> socket.socket:
    """A listening socket inside the namespace at ``netns_path``; this thread returns to its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns_path})")
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to our own namespace")
    finally:
        os.close(own)
        os.close(target)
    return sock


class Relay:
    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream_port, self.delay_s = upstream_port, delay_s
        self.delaying = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self.pump(reader, up_writer), self.pump(up_reader, writer))

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; with the delay on, each chunk leaves ``delay_s`` after it arrived."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # the emulated link delay itself
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((time.monotonic() + (self.delay_s if self.delaying else 0.0), data))
        except OSError:
            pass  # the peer reset the connection: forward what is queued, then close
        finally:
            queue.put_nowait((0.0, b""))
            with contextlib.suppress(OSError):
                await sender
            writer.close()


async def serve(args: argparse.Namespace) -> None:
    relay = Relay(args.upstream_port, args.delay_ms / 1000)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(relay, "delaying", True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(relay, "delaying", False))
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    sock = listen_in_namespace(args.netns, args.listen, args.port)
    server = await asyncio.start_server(relay.handle, sock=sock)
    print(f"relay listening on {args.listen}:{args.port} -> 127.0.0.1:{args.upstream_port}", flush=True)
    async with server:
        await stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True, help="/var/run/netns/NAME")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
