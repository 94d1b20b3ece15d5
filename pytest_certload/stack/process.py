"""Local processes the plugin starts: logged to a file, in their own process group, always stopped.

Every process started here is registered in :data:`RUNNING` until stopped, so the pytest glue can
stop everything on session end, on KeyboardInterrupt and on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_certload.stack.secret import Secret, reveal_env, scrub, secrets_in

RUNNING: dict[int, ManagedProcess] = {}
_lock = threading.Lock()


class ComponentFailed(RuntimeError):
    """A stack component did not come up: names it, the command, and the tail of its log."""

    def __init__(self, name: str, command: str, reason: str, log_tail: str = "") -> None:
        self.name, self.command, self.reason, self.log_tail = name, command, reason, log_tail
        msg = f"{name} did not come up: {reason}\n  command: {command}"
        if log_tail:
            msg += "\n  last lines of its log:\n" + "\n".join("    " + ln for ln in log_tail.splitlines())
        super().__init__(msg)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when absent)."""
    try:
        data = path.read_bytes()[-16384:]
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """A child process with its log file; ``stop()`` is idempotent and kills the whole group.

    ``env`` values may be :class:`Secret`: they are revealed only inside the ``Popen`` call, the
    environment is left out of the repr, and log tails in errors have those secrets scrubbed.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str | Secret] | None = field(default=None, repr=False)
    cwd: Path | None = None
    user: str | None = None  # run as this user (PostgreSQL refuses to run as root)
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = field(default=None, init=False)

    @property
    def command(self) -> str:
        return " ".join(str(a) for a in self.argv)

    def log_tail(self, lines: int = 20) -> str:
        """The tail of the log, with any secret of this process's environment scrubbed."""
        return scrub(tail(self.log_path, lines), secrets_in((self.env or {}).values()))

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        failure = None
        try:
            self.popen = subprocess.Popen(
                [str(a) for a in self.argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=reveal_env(self.env),
                cwd=self.cwd,
                user=self.user,
                start_new_session=True,
            )
        except OSError as exc:
            failure = ComponentFailed(self.name, self.command, f"could not start: {exc}")
        finally:
            log.close()
        if failure is not None:  # not chained: subprocess's frames hold the plain environment
            raise failure from None
        with _lock:
            RUNNING[self.popen.pid] = self
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str = "ready") -> float:
        """Poll ``check`` until it returns True; return the seconds it took.

        Fails fast with the log tail if the process exits, and after ``timeout`` seconds otherwise.
        """
        start = time.monotonic()
        delay = 0.02
        while True:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise ComponentFailed(self.name, self.command, f"exited with code {code}", self.log_tail())
            try:
                if check():
                    return time.monotonic() - start
            except Exception:
                pass
            if time.monotonic() - start > timeout:
                raise ComponentFailed(
                    self.name, self.command, f"not {what} after {timeout:.0f} s", self.log_tail()
                )
            time.sleep(delay)  # polling interval of a readiness probe, not synchronisation
            delay = min(delay * 1.5, 0.2)

    def stop(self, timeout: float = 10.0, signum: int | None = None) -> None:
        """Signal the process group (``signum``, default ``stop_signal``), wait, then SIGKILL the rest."""
        p = self.popen
        if p is None:
            return
        with _lock:
            RUNNING.pop(p.pid, None)
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, self.stop_signal if signum is None else signum)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # a daemon that forked (pg_ctl, apache) may leave group members behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)

    def exit_description(self) -> str | None:
        """None while running; else 'exited with code N' (or 'never started') and its log tail."""
        if self.popen is None:
            return "never started"
        code = self.popen.poll()
        if code is None:
            return None
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        lines = "\n".join("    " + ln for ln in self.log_tail().splitlines())
        return f"{how}\n  last lines of its log:\n{lines}"

    def restart(self, signum: int = signal.SIGTERM, timeout: float = 10.0) -> float:
        """Stop with ``signum`` (SIGTERM: graceful; SIGKILL: crash), start the same command again.

        Returns the seconds the stop took. The caller waits for readiness (``wait_ready``): what
        "ready" means depends on the component.
        """
        started = time.monotonic()
        self.stop(timeout, signum)
        stopped = time.monotonic() - started
        self.popen = None
        self.start()
        return stopped


def stop_all() -> None:
    """Stop every process still registered (newest first)."""
    with _lock:
        procs = list(RUNNING.values())
    for proc in reversed(procs):
        proc.stop()
