"""Real certctl agents as managed processes: K ``certctl-agent`` binaries beside the simulated fleet.

Why: the simulated agents (pytest_certload/agents/) copy the real agent's cadence and requests from
its source; running a handful of the real binary against the same stack is how we check that copy.
The binary is built outside this repository and named by ``--certctl-agent-bin`` (env
``CERTLOAD_CERTCTL_AGENT_BIN``); tests skip without it.

Each agent gets the environment cmd/agent/main.go reads (certctl 151107c, facts A.1):
``CERTCTL_SERVER_URL`` (https, loopback), ``CERTCTL_API_KEY`` (the stack's token, a :class:`Secret`
revealed only inside ``Popen`` by :func:`~pytest_certload.stack.secret.reveal_env`),
``CERTCTL_AGENT_ID`` (a seeded agent row: the binary never registers itself),
``CERTCTL_SERVER_CA_BUNDLE_PATH`` and its own ``CERTCTL_KEY_DIR``; nothing else of this process's
environment but ``PATH`` (its NGINX connector runs ``reload_command`` through exec's PATH lookup).
Their JSON logs (stdout) go to one file each. :class:`RealAgents` is a context manager that stops
every agent on the way out, also on a failed assertion or KeyboardInterrupt (SIGTERM to the process
group, SIGKILL after ``stop_timeout``); the processes are also in ``process.RUNNING``, which the
stack's pytest glue stops at session end and on SIGTERM.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from pytest_certload.stack.process import ComponentFailed, ManagedProcess
from pytest_certload.stack.secret import Secret

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class RealAgent:
    """One running certctl-agent: its id, process, key directory and JSON log."""

    agent_id: str
    process: ManagedProcess
    key_dir: Path

    @property
    def pid(self) -> int | None:
        return self.process.popen.pid if self.process.popen is not None else None

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def log_events(self) -> list[dict]:
        """The agent's JSON log lines, parsed (lines that are not JSON objects are skipped)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        events = []
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                events.append(doc)
        return events


def agent_env(agent_id: str, server_url: str, token: Secret, ca_bundle: Path | None, key_dir: Path) -> dict:
    """The environment one agent runs with; the token stays a :class:`Secret` until ``Popen``."""
    env: dict[str, str | Secret] = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "CERTCTL_SERVER_URL": server_url,
        "CERTCTL_API_KEY": token,
        "CERTCTL_AGENT_ID": agent_id,
        "CERTCTL_AGENT_NAME": f"certload-real-{agent_id}",
        "CERTCTL_KEY_DIR": str(key_dir),
    }
    if ca_bundle is not None:
        env["CERTCTL_SERVER_CA_BUNDLE_PATH"] = str(ca_bundle)
    return env


def check_server_url(url: str) -> None:
    """The agent refuses anything but https (main.go:498-503); this suite talks to loopback only."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ValueError(f"real agents need an https:// certctl URL (cmd/agent/main.go:498-503), not {url!r}")
    if parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"real agents are started against loopback only, not {parts.hostname!r}")


@dataclass
class RealAgents:
    """K real agents against one certctl URL; ``with RealAgents(...) as agents:`` always stops them."""

    binary: Path
    agent_ids: Sequence[str]
    server_url: str
    token: Secret = field(repr=False)
    ca_bundle: Path | None
    workdir: Path
    stop_timeout: float = 10.0
    log_level: str = "info"
    agents: list[RealAgent] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        check_server_url(self.server_url)
        if not isinstance(self.token, Secret):
            self.token = Secret(self.token)
        if not self.agent_ids:
            raise ValueError("RealAgents needs at least one seeded agent id")

    def start(self) -> RealAgents:
        """Start every agent; if one cannot start, stop the ones started and raise ComponentFailed."""
        try:
            for agent_id in self.agent_ids:
                key_dir = self.workdir / agent_id / "keys"
                key_dir.parent.mkdir(parents=True, exist_ok=True)
                env = agent_env(agent_id, self.server_url, self.token, self.ca_bundle, key_dir)
                if self.log_level == "debug":
                    env["CERTCTL_LOG_LEVEL"] = "debug"
                proc = ManagedProcess(
                    f"certctl-agent {agent_id}",
                    [str(self.binary)],
                    self.workdir / agent_id / "agent.log",
                    env=env,
                )
                self.agents.append(RealAgent(agent_id, proc.start(), key_dir))
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> RealAgents:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM to each agent's process group, SIGKILL after ``stop_timeout``; idempotent."""
        for agent in reversed(self.agents):
            agent.process.stop(self.stop_timeout)

    def pids(self) -> dict[str, int]:
        return {a.agent_id: a.pid for a in self.agents if a.pid is not None}

    def exited(self) -> dict[str, str]:
        """Agents that are no longer running -> how they ended, with their log tails."""
        out = {}
        for agent in self.agents:
            described = agent.process.exit_description()
            if described is not None:
                out[agent.agent_id] = described
        return out

    def check_running(self) -> None:
        """Raise ComponentFailed naming the first agent that exited (the real agent exits on bad config)."""
        for agent in self.agents:
            if not agent.process.alive():
                described = agent.process.exit_description() or "not running"
                raise ComponentFailed(agent.process.name, agent.process.command, described)

    def log_tails(self, lines: int = 8) -> str:
        """Every agent's last log lines (token scrubbed), for failure messages."""
        parts = []
        for agent in self.agents:
            state = agent.process.exit_description() or "running"
            body = (
                "\n".join("    " + ln for ln in agent.process.log_tail(lines).splitlines()) or "    (empty)"
            )
            parts.append(f"  {agent.agent_id} ({state.splitlines()[0]}), log {agent.log_path}:\n{body}")
        return "real certctl agents:\n" + "\n".join(parts)

    def established(self, port: int) -> dict[str, set[int]]:
        """Per agent, the local ports of its ESTABLISHED TCP connections to ``port`` (psutil)."""
        out: dict[str, set[int]] = {}
        for agent_id, pid in self.pids().items():
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                out[agent_id] = set()
                continue
            out[agent_id] = {
                c.laddr.port
                for c in conns
                if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port
            }
        return out


@dataclass
class ConnectionReadings:
    """What :class:`ConnectionSampler` saw per agent: most connections at once, every local port seen."""

    samples: int = 0
    most_at_once: dict[str, int] = field(default_factory=dict)
    ports_seen: dict[str, set[int]] = field(default_factory=dict)

    def distinct(self, agent_id: str) -> int:
        return len(self.ports_seen.get(agent_id, ()))


class ConnectionSampler:
    """Samples the real agents' established connections to one port every ``every`` seconds, in a thread.

    A background reader, not synchronisation: it only records what it sees until :meth:`stop`.
    """

    def __init__(self, agents: RealAgents, port: int, every: float = 2.0) -> None:
        self.agents, self.port, self.every = agents, port, every
        self.readings = ConnectionReadings()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="real-agent-connections", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self) -> None:
        r = self.readings
        for agent_id, ports in self.agents.established(self.port).items():
            r.most_at_once[agent_id] = max(r.most_at_once.get(agent_id, 0), len(ports))
            r.ports_seen.setdefault(agent_id, set()).update(ports)
        r.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.every - (time.monotonic() - started)))

    def stop(self) -> ConnectionReadings:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.every + 5)
        return self.readings
