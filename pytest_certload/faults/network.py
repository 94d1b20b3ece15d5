"""Network delay and loss between the generator and certctl, on a link the test creates and removes.

:class:`NetworkFault` builds a network namespace with one veth pair (host end ``10.214.N.1``,
namespace end ``10.214.N.2``, a /24 no route of this host uses yet), and starts the relay
(``faults/relay.py``) listening on the namespace end and forwarding to certctl's port on loopback.
The generator targets :attr:`NetworkFault.url`, so every request crosses the veth link. During the
fault window:

* with ``tc``'s ``netem`` in the kernel: ``netem delay D loss L%`` on both ends of the link;
* without it (this project's VM: CONFIG_NET_SCH_NETEM is not set): loss as ``iptables -m statistic
  --mode random`` DROP rules inside the namespace (packet loss on the link, TCP retransmits it),
  delay by the relay (each chunk forwarded D ms after it arrived, both directions).

:attr:`NetworkFault.mechanism` says which. Only addresses and rules inside the namespace this
object created are touched; :meth:`close` (also on ``with`` exit) removes the namespace, the link
and the relay. Needs root and iproute2.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from pytest_certload.faults.injector import Injector
from pytest_certload.stack.native import python_env
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.process import ManagedProcess

SUBNET_BASE = "10.214"
_SERIAL = itertools.count()  # two links in one process get different names


class NetworkUnavailable(RuntimeError):
    """Namespaces cannot be built here (not root, no iproute2): the message says which."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=15)


def free_subnet() -> str:
    """``10.214.N.`` for the first N no route of this host mentions."""
    routes = run("ip", "-4", "route").stdout
    for n in range(10, 250):
        prefix = f"{SUBNET_BASE}.{n}."
        if prefix not in routes:
            return prefix
    raise NetworkUnavailable(f"no free {SUBNET_BASE}.N.0/24 for the fault's link")


class NetworkFault(Injector):
    kind = "network"

    def __init__(
        self, upstream_port: int, workdir: Path, *, hold_s: float, delay_ms: float = 50.0, loss: float = 0.05
    ) -> None:
        super().__init__(hold_s=hold_s)
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise NetworkUnavailable("a network fault needs root and iproute2 (ip netns)")
        if not 0 <= loss < 1 or delay_ms < 0:
            raise ValueError(f"delay_ms={delay_ms!r} must be >= 0 and loss={loss!r} in [0, 1)")
        self.delay_ms, self.loss, self.upstream_port, self.workdir = delay_ms, loss, upstream_port, workdir
        tag = f"{os.getpid() % 100000}{next(_SERIAL)}"  # interface names: at most 15 characters
        self.netns, self.host_if, self.ns_if = f"clfault{tag}", f"clfh{tag}", f"clfn{tag}"
        self.made: list[tuple[str, str]] = []
        self.relay: ManagedProcess | None = None
        self.mechanism = ""
        self._iptables: list[list[str]] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- the link ---------------------------------------------------------------------------------
    def _build(self) -> None:
        prefix = free_subnet()
        self.host_addr, self.ns_addr = prefix + "1", prefix + "2"
        run("ip", "netns", "add", self.netns)
        self.made.append(("netns", self.netns))
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        self.made.append(("link", self.host_if))
        run("ip", "link", "set", self.ns_if, "netns", self.netns)
        run("ip", "addr", "add", f"{self.host_addr}/24", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "netns", "exec", self.netns)
        run(*inside, "ip", "addr", "add", f"{self.ns_addr}/24", "dev", self.ns_if)
        run(*inside, "ip", "link", "set", self.ns_if, "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        self.netem = self._netem_works()
        self.mechanism = (
            "tc netem on the veth link"
            if self.netem
            else "iptables statistic DROP in the namespace (loss) + relay delay (no netem in this kernel)"
        )
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "pytest_certload.faults.relay",
            "--netns",
            f"/var/run/netns/{self.netns}",
            "--listen",
            self.ns_addr,
            "--port",
            str(self.port),
            "--upstream-port",
            str(self.upstream_port),
            "--delay-ms",
            str(0 if self.netem else self.delay_ms),
        ]
        self.relay = ManagedProcess("fault relay", argv, self.workdir / "relay.log", env=python_env())
        self.relay.start()

        def listening() -> bool:
            with socket.create_connection((self.ns_addr, self.port), timeout=1):
                return True

        self.relay.wait_ready(listening, 15, f"listening on {self.ns_addr}:{self.port}")

    def _netem_works(self) -> bool:
        probe = run("tc", "qdisc", "add", "dev", self.host_if, "root", "netem", "delay", "1ms", check=False)
        if probe.returncode != 0:
            return False
        run("tc", "qdisc", "del", "dev", self.host_if, "root", check=False)
        return True

    @property
    def url(self) -> str:
        """Where the generator sends its requests: through the link, to certctl."""
        return f"https://{self.ns_addr}:{self.port}"

    def describe(self) -> str:
        what = f"delay {self.delay_ms:g} ms, loss {self.loss:.0%}"
        return f"network: {what} on {self.host_if} ({self.mechanism})"

    # -- the fault --------------------------------------------------------------------------------
    def _inject(self) -> None:
        netem = ["netem", "delay", f"{self.delay_ms:g}ms", "loss", f"{self.loss * 100:g}%"]
        if self.netem:
            run("tc", "qdisc", "add", "dev", self.host_if, "root", *netem)
            run("ip", "netns", "exec", self.netns, "tc", "qdisc", "add", "dev", self.ns_if, "root", *netem)
            return
        assert self.relay is not None and self.relay.popen is not None
        if self.loss > 0:
            probability = f"{self.loss:.4f}"
            for chain, port_match in (("INPUT", "--dport"), ("OUTPUT", "--sport")):
                rule = [chain, "-p", "tcp", port_match, str(self.port), "-m", "statistic"]
                rule += ["--mode", "random", "--probability", probability, "-j", "DROP"]
                run("ip", "netns", "exec", self.netns, "iptables", "-A", *rule)
                self._iptables.append(rule)
        if self.delay_ms > 0:
            os.kill(self.relay.popen.pid, signal.SIGUSR1)

    def _undo(self) -> None:
        if self.netem:
            run("tc", "qdisc", "del", "dev", self.host_if, "root", check=False)
            inside = ("ip", "netns", "exec", self.netns)
            run(*inside, "tc", "qdisc", "del", "dev", self.ns_if, "root", check=False)
            return
        while self._iptables:
            rule = self._iptables.pop()
            run("ip", "netns", "exec", self.netns, "iptables", "-D", *rule, check=False)
        if self.relay is not None and self.relay.alive():
            os.kill(self.relay.popen.pid, signal.SIGUSR2)  # type: ignore[union-attr]

    # -- teardown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Undo the fault, stop the relay, remove the link and the namespace (idempotent)."""
        self.undo()
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        for kind, name in reversed(self.made):
            args = ("netns", "delete", name) if kind == "netns" else ("link", "delete", name)
            run("ip", *args, check=False)
        self.made.clear()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
