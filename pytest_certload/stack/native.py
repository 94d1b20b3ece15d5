"""The native provider: PostgreSQL, certctl (or the stand-in) and the targets as local processes.

Everything listens on 127.0.0.1 on ports chosen at run time, keeps its files in its own directory
under the session workdir, and is stopped by :meth:`NativeProvider.stop` (also registered in
:data:`process.RUNNING` for the last-resort ``stop_all``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pytest_certload.sidecars import configs
from pytest_certload.stack.certctl import ServerBoot, SessionSecrets, certctl_process, standin_process
from pytest_certload.stack.model import Stack, Target, loopback_target
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.ports import distinct_free_ports
from pytest_certload.stack.postgres import NativePostgres
from pytest_certload.stack.probes import certctl_ready, certctl_version, is_ours, process_listens
from pytest_certload.stack.process import ComponentFailed, ManagedProcess
from pytest_certload.stack.provider import RESTARTABLE, RestartUnsupported, StackProvider
from pytest_certload.stack.secret import connect_pg
from pytest_certload.stack.tls import TLSMaterial

HOST = "127.0.0.1"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding pytest_certload/
PRIVATE_ENV = ("CERTLOAD_CERTCTL_TOKEN",)
COMPONENT_NAMES = ("nginx", "apache", "haproxy", "f5", "certctl", "postgresql")


def python_env() -> dict[str, str]:
    """Environment for our own Python children: this interpreter's, with our package importable.

    Without ``CERTLOAD_CERTCTL_TOKEN`` (an external stack's key has no business in our children).
    """
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass(frozen=True)
class CertctlHandle:
    """certctl's (or the stand-in's) process and where it answers: what a restart needs."""

    process: ManagedProcess
    url: str
    port: int


class NativeProvider(StackProvider):
    """Starts the stack as local processes; :meth:`stop` undoes everything :meth:`start` did."""

    def __init__(self, opts: StackOptions, workdir: Path, tls: TLSMaterial, secret: SessionSecrets) -> None:
        self.opts, self.workdir, self.tls, self.secret = opts, workdir, tls, secret
        self.postgres: NativePostgres | None = None
        self.processes: list[ManagedProcess] = []
        self.certctl: CertctlHandle | None = None
        #: called after a restart (new pid): the session rewrites its orphan-reaping handle file
        self.after_restart: Callable[[], None] | None = None

    def _start(self) -> Stack:
        timeout = self.opts.ready_timeout
        components: dict[str, dict] = {}
        skipped: dict[str, str] = {}
        # targets first, each watched by its own thread while PostgreSQL and certctl boot
        pending: list[tuple[str, ManagedProcess, int, Future[float]]] = []
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="certload-ready")
        ports = dict(zip(COMPONENT_NAMES, distinct_free_ports(len(COMPONENT_NAMES)), strict=True))
        for name in ("nginx", "apache", "haproxy", "f5"):
            port = ports[name]
            cmd = self._target_command(name, port)
            if isinstance(cmd, str):
                skipped[name] = cmd
                continue
            proc = cmd
            self.processes.append(proc.start())
            probe = partial(is_ours, proc.popen.pid, HOST, port, self.tls.fingerprint_sha256)
            pending.append(
                (
                    name,
                    proc,
                    port,
                    pool.submit(proc.wait_ready, probe, timeout, "listening, presenting our leaf"),
                )
            )
        pool.shutdown(wait=False)

        t0 = time.monotonic()
        self.postgres = NativePostgres(
            self.workdir / "postgresql", port=ports["postgresql"], profile=self.opts.pg_profile
        )
        self.postgres.start(timeout)
        self.processes.append(self.postgres.process)
        components["postgresql"] = {
            "command": self.postgres.process.command,
            "ready_s": time.monotonic() - t0,
            "version": self.postgres.version,
            "profile": self.opts.pg_profile,
            "log": str(self.postgres.process.log_path),
        }

        server, proc, url = self._certctl_process(ports["certctl"])
        t0 = time.monotonic()
        self.processes.append(proc.start())
        self.certctl = CertctlHandle(proc, url, ports["certctl"])  # for restarts (faults/)

        def certctl_is_ours() -> bool:
            ca = str(self.tls.ca_cert)
            return certctl_ready(url, ca) and process_listens(proc.popen.pid, ports["certctl"])

        proc.wait_ready(certctl_is_ours, timeout, "listening, answering /health and /ready")
        ready_s = time.monotonic() - t0
        version = certctl_version(url, str(self.tls.ca_cert))
        components["certctl"] = {
            "command": proc.command,
            "ready_s": ready_s,
            "version": version,
            "log": str(proc.log_path),
        }

        targets: dict[str, Target] = {}
        for name, tproc, port, ready in pending:
            components[name] = {
                "command": tproc.command,
                "ready_s": ready.result(),
                "log": str(tproc.log_path),
            }
            targets[name] = loopback_target(name, port, self.tls.fingerprint_sha256, HOST)

        return Stack(
            kind="native",
            certctl_url=url,
            token=self.secret.api_token,
            ca_bundle=self.tls.ca_cert,
            server=server,
            owned=True,
            dsn=self.postgres.dsn,
            targets=targets,
            server_version=version if server == "certctl" else None,
            postgres_version=self.postgres.version,
            pg_profile=self.opts.pg_profile,
            pg_settings=dict(self.postgres.settings),
            pg_data=self.postgres.describe_data(),
            rate_limit_enabled=self.opts.rate_limit,
            bootstrap_token=self.secret.bootstrap_token,
            components=components,
            skipped=skipped,
            server_pid=proc.popen.pid if proc.popen is not None else None,
            postgres_pid=self.postgres.process.popen.pid if self.postgres.process.popen else None,
        )

    def _target_command(self, name: str, port: int) -> ManagedProcess | str:
        """The process for one target, or the reason it is skipped."""
        wd = self.workdir / name
        wd.mkdir(parents=True, exist_ok=True)
        if name == "f5":
            cmd = configs.f5mock(wd, HOST, port, self.tls, python=sys.executable)
            return ManagedProcess("f5", cmd.argv, wd / "f5mock.log", env=python_env(), cwd=wd)
        binary = configs.find_binary(name)
        if binary is None:
            return f"{configs.BINARIES[name]} not found on PATH (apt-get install {configs.BINARIES[name]})"
        cmd = configs.WRITERS[name](wd, HOST, port, self.tls, binary=binary)
        return ManagedProcess(name, cmd.argv, wd / "stdout.log", cwd=wd)

    def _certctl_process(self, port: int) -> tuple[str, ManagedProcess, str]:
        url = f"https://{HOST}:{port}"
        wd = self.workdir / "certctl"
        cwd = wd / "cwd"  # empty: no web/ directory, so certctl stays in API-only mode
        cwd.mkdir(parents=True, exist_ok=True)
        assert self.postgres is not None
        if self.opts.server_kind == "image":
            raise ComponentFailed(
                "certctl", f"image {self.opts.certctl_image}", "the native stack runs no images (docker does)"
            )
        boot = ServerBoot(
            self.postgres.dsn,
            HOST,
            port,
            self.tls.server_cert,
            self.tls.server_key,
            self.secret,
            self.opts.rate_limit,
        )
        if self.opts.server_kind == "bin":
            assert self.opts.certctl_bin is not None
            proc = certctl_process(
                boot,
                self.opts.certctl_bin,
                self.opts.certctl_migrations,
                name="certctl",
                log=wd / "certctl.log",
                cwd=cwd,
            )
            return "certctl", proc, url
        proc = standin_process(
            boot, name="certctl stand-in", log=wd / "standin.log", base_env=python_env(), cwd=cwd
        )
        return "stand-in", proc, url

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.processes if p.popen is not None]

    def stop(self) -> None:
        """Stop in reverse start order; PostgreSQL last (it also removes its data directory)."""
        for proc in reversed(self.processes):
            if self.postgres is None or proc is not self.postgres.process:
                proc.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.processes.clear()

    # -- faults and health ---------------------------------------------------------------------
    def dead_components(self) -> dict[str, str]:
        return {p.name: why for p in self.processes if (why := p.exit_description()) is not None}

    def cannot_restart(self, name: str) -> str | None:
        if name in RESTARTABLE:
            return None
        return f"the native stack restarts certctl and postgresql, not {name!r}"

    def restart_component(self, name: str, signum: int = signal.SIGTERM) -> float:
        """Restart certctl (the stand-in) or PostgreSQL in place: same command, port and data."""
        timeout = self.opts.ready_timeout
        if name == "certctl" and self.certctl is not None:
            handle, ca = self.certctl, str(self.tls.ca_cert)
            handle.process.restart(signum)
            started = time.monotonic()

            def answers() -> bool:
                pid = handle.process.popen.pid if handle.process.popen else 0
                return certctl_ready(handle.url, ca) and process_listens(pid, handle.port)

            handle.process.wait_ready(answers, timeout, "listening, answering /health and /ready")
            self._new_pid("server_pid", handle.process)
            return time.monotonic() - started
        if name == "postgresql" and self.postgres is not None and self.postgres.process is not None:
            proc, dsn = self.postgres.process, self.postgres.dsn
            proc.restart(signum)
            started = time.monotonic()

            def accepts() -> bool:
                with connect_pg(dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return True

            proc.wait_ready(accepts, timeout, "accepting connections")
            self._new_pid("postgres_pid", proc)
            return time.monotonic() - started
        raise RestartUnsupported(f"the native stack has no component {name!r} to restart")

    def _new_pid(self, field: str, proc: ManagedProcess) -> None:
        """The stack's description and the session's handle file follow a restarted process.

        Server-side sampling reads the pid from the stack; a later session reaping this one's
        orphans (after a SIGKILL) reads it from the handle file, which would otherwise name a pid
        that is gone (or, reused, a stranger's: the start time check skips it) and miss the new one.
        """
        if self.stack is not None and hasattr(self.stack, field) and proc.popen is not None:
            setattr(self.stack, field, proc.popen.pid)
        if self.after_restart is not None:
            self.after_restart()
