"""One stack per test session: pick the provider, make the workdir, TLS and secrets, start, stop.

Also the (de)serialisation that lets pytest-xdist workers share the stack one of them started:
the description goes to a JSON file, the secrets to a separate 0600 file, and what is needed to
tear the stack down from another process (pids, container label, directories) to the handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from pytest_certload.stack import docker as docker_provider
from pytest_certload.stack.certctl import SessionSecrets
from pytest_certload.stack.choice import resolve as resolve_certctl
from pytest_certload.stack.external import attach
from pytest_certload.stack.model import Stack, Target
from pytest_certload.stack.native import NativeProvider
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.process import ComponentFailed
from pytest_certload.stack.secret import DsnSecret, Secret
from pytest_certload.stack.tls import make_tls_material


@dataclass
class TeardownHandle:
    """Enough to stop a stack from a process that did not start it (the xdist controller)."""

    session_id: str
    kind: str
    owner: str = ""  # "<pid>:<start time>" of the pytest process that answers for the stack
    processes: list[dict] = field(default_factory=list)  # {pid, create_time, stop_signal}
    directories: list[str] = field(default_factory=list)


def resolve_provider(opts: StackOptions) -> str:
    if opts.provider:
        return opts.provider
    return "docker" if docker_provider.engine_answers() else "native"


class StackSession:
    """Owns the provider for this process; :meth:`stop` is idempotent."""

    def __init__(self, opts: StackOptions, owner_pid: int | None = None) -> None:
        self.opts = opts
        self.owner_pid = owner_pid  # who answers for containers; the xdist controller under xdist
        self.kind = resolve_provider(opts)
        self.session_id = uuid.uuid4().hex
        self.provider: NativeProvider | docker_provider.DockerProvider | None = None
        self.workdir: Path | None = None
        self._own_workdir = False
        self.stack: Stack | None = None

    def start(self) -> Stack:
        self.opts = resolve_certctl(self.opts)  # --certctl=auto: a binary, the image, or the stand-in
        if self.kind == "external":
            self.stack = self._label(attach(self.opts))
            return self.stack
        if self.opts.workdir is not None:
            self.workdir = self.opts.workdir / f"stack-{self.session_id[:12]}"
            self.workdir.mkdir(parents=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="certload-stack-"))
            self._own_workdir = True
        os.chmod(self.workdir, 0o755)  # daemons that drop privileges (apache, nginx workers) read from here
        if self.kind == "native":
            reap_native_orphans()
        tls = make_tls_material(self.workdir / "tls")
        secret = SessionSecrets()
        if self.kind == "docker":
            if not docker_provider.engine_answers():
                raise ComponentFailed(
                    "docker",
                    "docker ping",
                    "no Docker engine answers (check DOCKER_HOST or start one), "
                    "or run with --certload-stack=native",
                )
            self.provider = docker_provider.DockerProvider(
                self.opts, self.workdir, tls, secret, self.session_id, owner_pid=self.owner_pid
            )
        else:
            self.provider = NativeProvider(self.opts, self.workdir, tls, secret)
        try:
            self.stack = self._label(self.provider.start())
        except BaseException:
            self._remove_workdir()
            raise
        if self._own_workdir and isinstance(self.provider, NativeProvider):
            self._write_handle()  # lets a later session reap us after a SIGKILL
            self.provider.after_restart = self._write_handle  # a restarted process has a new pid
        return self.stack

    def _write_handle(self) -> None:
        if self.workdir is not None and self._own_workdir:
            (self.workdir / HANDLE_FILE).write_text(json.dumps(asdict(self.handle())))

    def _label(self, stack: Stack) -> Stack:
        """The certctl choice on the stack, for its description and every report made from it."""
        stack.certctl_choice = self.opts.certctl_given
        stack.certctl_source = self.opts.certctl_source
        stack.fallback_reason = self.opts.fallback_reason
        return stack

    def handle(self) -> TeardownHandle:
        h = TeardownHandle(
            self.session_id, self.kind, docker_provider.owner_id(self.owner_pid or os.getpid())
        )
        if isinstance(self.provider, NativeProvider):
            for proc in self.provider.processes:
                if proc.popen is None:
                    continue
                with contextlib.suppress(psutil.Error):
                    h.processes.append(
                        {
                            "pid": proc.popen.pid,
                            "stop_signal": int(proc.stop_signal),
                            "create_time": psutil.Process(proc.popen.pid).create_time(),
                        }
                    )
            if self.provider.postgres is not None and getattr(self.provider.postgres, "_datadir", None):
                h.directories.append(str(self.provider.postgres._datadir))
        if self._own_workdir and self.workdir is not None:
            h.directories.append(str(self.workdir))
        return h

    def detach(self) -> None:
        """Forget the running processes here: another process (the xdist controller) stops them."""
        from pytest_certload.stack import process

        if isinstance(self.provider, NativeProvider):
            with process._lock:
                for proc in self.provider.processes:
                    if proc.popen is not None:
                        process.RUNNING.pop(proc.popen.pid, None)
        self.provider = None
        self._own_workdir = False

    def stop(self) -> None:
        if self.provider is not None:
            self.provider.stop()
            self.provider = None
        self._remove_workdir()

    def _remove_workdir(self) -> None:
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False


def stop_by_handle(handle: TeardownHandle, timeout: float = 10.0) -> None:
    """Stop what a handle names: process groups (pid + start time must still match), containers, dirs."""
    procs = []
    for entry in handle.processes:
        try:
            p = psutil.Process(entry["pid"])
            if abs(p.create_time() - entry["create_time"]) > 0.01:
                continue  # pid reused by a stranger
            os.killpg(entry["pid"], entry["stop_signal"])
            procs.append(p)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    for entry in handle.processes:  # daemons' own children left in the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(entry["pid"], signal.SIGKILL)
    if handle.kind == "docker":
        with contextlib.suppress(Exception):
            docker_provider.reap(handle.session_id)
    for d in handle.directories:
        shutil.rmtree(d, ignore_errors=True)


HANDLE_FILE = ".certload-handle.json"


def reap_native_orphans() -> list[str]:
    """Stop the processes of native stacks whose owning pytest process is gone (SIGKILL, crash).

    Only stacks in our own temp directories (``$TMPDIR/certload-stack-*``) are considered, and
    only when the owner's pid and start time no longer match a running process.
    """
    reaped = []
    for path in Path(tempfile.gettempdir()).glob(f"certload-stack-*/{HANDLE_FILE}"):
        try:
            handle = TeardownHandle(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        pid, _, started = handle.owner.partition(":")
        try:
            alive = f"{psutil.Process(int(pid)).create_time():.2f}" == started
        except (psutil.NoSuchProcess, ValueError):
            alive = False
        if not alive:
            stop_by_handle(handle)
            reaped.append(str(path.parent))
    return reaped


# -- sharing between xdist workers ---------------------------------------------------------------

SECRET_FIELDS = ("token", "dsn", "bootstrap_token")
#: the default stack's name; variants (e.g. a limiter-enabled stack) share under names of their own
DEFAULT_NAME = "certload-stack"


def stack_to_wire(stack: Stack) -> tuple[dict, dict]:
    """(description without secrets, secrets revealed): what another process needs to use the stack."""
    public = {k: v for k, v in asdict(stack).items() if k not in SECRET_FIELDS}
    public["ca_bundle"] = str(stack.ca_bundle) if stack.ca_bundle else None
    public = json.loads(json.dumps(public, default=str))
    return public, {k: _plain(getattr(stack, k)) for k in SECRET_FIELDS}


def stack_from_wire(public: dict, secrets: dict) -> Stack:
    """The inverse of :func:`stack_to_wire`: secrets wrapped again at once."""
    fields = dict(public)
    fields["targets"] = {n: Target(**t) for n, t in fields["targets"].items()}
    fields["ca_bundle"] = Path(fields["ca_bundle"]) if fields["ca_bundle"] else None
    for k in SECRET_FIELDS:
        kind = DsnSecret if k == "dsn" else Secret
        fields[k] = kind(secrets[k]) if secrets.get(k) is not None else None
    return Stack(**fields)


def write_shared(directory: Path, stack: Stack, handle: TeardownHandle, name: str = DEFAULT_NAME) -> None:
    """Description (no secrets) to NAME.json, secrets to NAME.secrets.json (mode 0600), handle."""
    public, secrets = stack_to_wire(stack)
    _write_secrets(directory / f"{name}.secrets.json", secrets)
    (directory / f"{name}.handle.json").write_text(json.dumps(asdict(handle)))
    (directory / f"{name}.json").write_text(json.dumps(public, indent=1))


def _write_secrets(path: Path, secrets: dict) -> None:
    """The one place a stack's secrets are written out: a 0600 file only our workers read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secrets, f)


def _plain(value: Secret | None) -> str | None:
    return value.reveal() if value is not None else None


def write_shared_failure(directory: Path, message: str, name: str = DEFAULT_NAME) -> None:
    (directory / f"{name}.json").write_text(json.dumps({"error": message}))


def read_shared(directory: Path, name: str = DEFAULT_NAME) -> Stack | str | None:
    """The stack another worker started, the error it got, or None when nobody tried yet."""
    path = directory / f"{name}.json"
    if not path.is_file():
        return None
    public = json.loads(path.read_text())
    if "error" in public:
        return public["error"]
    return stack_from_wire(public, json.loads((directory / f"{name}.secrets.json").read_text()))


def read_handles(directory: Path) -> dict[Path, TeardownHandle]:
    """Every stack workers left running for the controller to stop: handle file -> handle."""
    return {p: TeardownHandle(**json.loads(p.read_text())) for p in sorted(directory.glob("*.handle.json"))}
