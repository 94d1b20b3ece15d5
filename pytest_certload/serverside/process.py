"""certctl's (and PostgreSQL's) process as the operating system sees it.

Native stacks: the process by PID (psutil); PostgreSQL as its postmaster plus every backend, live and
already exited (``children_user``/``children_system`` hold the reaped ones). Docker stacks: the
container's cgroup figures through the Docker API (CPU, memory, tasks), and its main process through
/proc for open files and connections (the container's PID is the host's: same kernel). External
stacks: nothing here; the block says n/a.

Connections are counted from ``/proc/<pid>/net/tcp{,6}`` (the process's own network namespace):
established TCP connections whose local port is the server's port.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

TCP_ESTABLISHED = "01"
TCP_LISTEN = "0A"


def proc_net_tcp(text: str) -> tuple[set[int], dict[int, int]]:
    """Listening local ports and established connections per local port, from /proc/net/tcp text."""
    listening: set[int] = set()
    established: dict[int, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or fields[0] == "sl":
            continue
        state = fields[3].upper()
        if state == TCP_LISTEN:
            listening.add(int(fields[1].rsplit(":", 1)[1], 16))
        elif state == TCP_ESTABLISHED:
            port = int(fields[1].rsplit(":", 1)[1], 16)
            established[port] = established.get(port, 0) + 1
    return listening, established


@dataclass(frozen=True)
class ProcessReading:
    """One look at a process (or a container); None where that figure cannot be read."""

    cpu_s: float | None = None  # user + system CPU seconds since it started
    rss_bytes: int | None = None
    threads: int | None = None
    fds: int | None = None
    connections: int | None = None  # established TCP connections on the server's port

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProcessProbe(Protocol):
    """Reads one process or container; ``source`` says which (for the report)."""

    source: str

    def read(self) -> ProcessReading: ...


def tcp_connections(pid: int, port: int) -> int | None:
    """Established TCP connections on local ``port`` in ``pid``'s network namespace (None: unreadable)."""
    texts = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            texts.append(Path(f"/proc/{pid}/net/{table}").read_text())
    if not texts:
        return None
    return proc_net_tcp("\n".join(texts))[1].get(port, 0)


def listening_pid(port: int) -> int | None:
    """The PID holding a listening TCP socket on ``port`` (after a restart the PID has changed)."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    return None


class PidProbe:
    """A local process by PID; ``tree`` adds its children (PostgreSQL's backends).

    When the PID is gone and ``port`` is known the probe follows whoever listens on the port now
    (a restarted certctl), and counts the restart: CPU time of the old process is then lost.
    """

    def __init__(self, pid: int, port: int | None = None, tree: bool = False) -> None:
        self.pid, self.port, self.tree = pid, port, tree
        self.source = f"pid {pid}" + (" and its children" if tree else "")
        self.restarts = 0
        self._process = psutil.Process(pid)

    def _current(self) -> psutil.Process | None:
        if self._process.is_running():
            return self._process
        found = listening_pid(self.port) if self.port else None
        if found is None:
            return None
        self._process = psutil.Process(found)
        self.restarts += 1
        return self._process

    def read(self) -> ProcessReading:
        try:
            proc = self._current()
            if proc is None:
                return ProcessReading()
            with proc.oneshot():
                times = proc.cpu_times()
                cpu = times.user + times.system
                rss = proc.memory_info().rss
                threads = proc.num_threads()
                fds = _quiet(proc.num_fds)
            if self.tree:
                cpu += times.children_user + times.children_system
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        t = child.cpu_times()
                        cpu += t.user + t.system
                        rss += child.memory_info().rss  # shared buffers count once per backend
            conns = tcp_connections(proc.pid, self.port) if self.port else None
            return ProcessReading(cpu, rss, threads, fds, conns)
        except psutil.Error:
            return ProcessReading()


class ContainerProbe:
    """A container's cgroup figures plus its main process's files.

    The cgroup files (v1 or v2, found through ``/proc/<pid>/cgroup``) are what the Docker API's stats
    read too, but a stats call takes a second (the engine waits for a second sample); the API is the
    fallback when the files are not visible here.
    """

    def __init__(self, container_id: str, port: int | None = None) -> None:
        import docker

        self.port = port
        self.source = f"container {container_id[:12]} (cgroup)"
        self._client = docker.from_env(timeout=10)
        self._container = self._client.containers.get(container_id)
        self._pid: int | None = None

    def read(self) -> ProcessReading:
        pid = self._main_pid()
        cgroup = read_cgroup(pid) if pid else None
        cpu, usage, tasks = cgroup if cgroup is not None else self._api_stats()
        fds = conns = None
        if pid:
            with contextlib.suppress(psutil.Error):
                fds = psutil.Process(pid).num_fds()
            conns = tcp_connections(pid, self.port) if self.port else None
        return ProcessReading(cpu, usage, tasks, fds, conns)

    def _api_stats(self) -> tuple[float | None, int | None, int | None]:
        try:
            stats = self._container.stats(stream=False, one_shot=True)
        except Exception:
            return None, None, None
        cpu_ns = (stats.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage")
        memory = stats.get("memory_stats") or {}
        usage = memory.get("usage")
        if usage is not None:  # what `docker stats` shows: page cache that can be dropped is not use
            usage -= (memory.get("stats") or {}).get("inactive_file", 0)
        tasks = (stats.get("pids_stats") or {}).get("current")
        return (cpu_ns / 1e9 if cpu_ns is not None else None), usage, tasks

    def _main_pid(self) -> int | None:
        if self._pid is not None and psutil.pid_exists(self._pid):
            return self._pid
        with contextlib.suppress(Exception):
            self._container.reload()  # a restarted container has a new main process
            self._pid = int(self._container.attrs.get("State", {}).get("Pid") or 0) or None
        return self._pid

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()


CGROUP_ROOT = Path("/sys/fs/cgroup")


def read_cgroup(pid: int, root: Path = CGROUP_ROOT) -> tuple[float, int | None, int | None] | None:
    """(CPU seconds, memory in use less inactive page cache, tasks) of ``pid``'s cgroup, or None."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    try:
        if "cpuacct" in paths:  # cgroup v1
            cpu = int((root / "cpuacct" / paths["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
            memory_dir = root / "memory" / paths.get("memory", "")
            usage = _int_file(memory_dir / "memory.usage_in_bytes")
            inactive = _stat_value(memory_dir / "memory.stat", "total_inactive_file")
            tasks = _int_file(root / "pids" / paths.get("pids", "") / "pids.current")
        else:  # cgroup v2: one hierarchy
            group = root / paths.get("", "")
            cpu = (_stat_value(group / "cpu.stat", "usage_usec") or 0) / 1e6
            usage = _int_file(group / "memory.current")
            inactive = _stat_value(group / "memory.stat", "inactive_file")
            tasks = _int_file(group / "pids.current")
    except (OSError, ValueError):
        return None
    if usage is not None and inactive is not None:
        usage -= inactive
    return cpu, usage, tasks


def _int_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stat_value(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _quiet(read: Any) -> Any:
    try:
        return read()
    except (psutil.Error, OSError):
        return None
