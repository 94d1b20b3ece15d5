"""The nginx every helper of ours runs: finding it, its config frame, its command line, starting it.

Several places run nginx: the stack's TLS target (:func:`pytest_certload.sidecars.configs.nginx`),
the agents' vantage proxy (:mod:`pytest_certload.stack.agent_vantage`), the sidecar-bound targets'
listeners (:mod:`pytest_certload.agents.sidecar_nginx`) and the engine's plain loopback target
(:mod:`pytest_certload.sidecars.plain_nginx`). Each writes its own ``http`` block; what they share
lives here, so that all keep every file nginx writes (pid, error log, temp dirs) in their own
directory, run it in the foreground, and count it ready only once it presents our leaf.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pytest_certload.stack.process import ManagedProcess
from pytest_certload.stack.tls import presented_fingerprint

#: nginx's temp-path directives and their dirs below ``workdir/tmp`` (the compiled-in defaults are
#: not writable for a non-root user)
TEMP_DIRS = {
    "client_body_temp_path": "body",
    "proxy_temp_path": "proxy",
    "fastcgi_temp_path": "fastcgi",
    "uwsgi_temp_path": "uwsgi",
    "scgi_temp_path": "scgi",
}
NOT_INSTALLED = "nginx is not installed (Debian: apt-get install nginx-light)"


def nginx_binary() -> str | None:
    """nginx on PATH, or in the sbin dirs a non-root user's PATH often lacks."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def make_temp_dirs(workdir: Path) -> None:
    """Create the temp dirs :func:`nginx_conf` points nginx at (and ``workdir`` itself)."""
    for sub in TEMP_DIRS.values():
        (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)


def nginx_conf(
    workdir: Path,
    http_body: str,
    logging: str = "access_log off;",
    worker_connections: int = 1024,
    workers: int = 1,
) -> str:
    """A whole nginx.conf: foreground, ``workers`` workers, files in ``workdir``, then ``http_body``.

    ``http_body`` is the rest of the ``http`` block (upstreams, servers), indented by four spaces;
    ``logging`` is its first directive(s), one a line.
    """
    logging_lines = "\n".join(f"    {line.strip()}" for line in logging.strip().splitlines())
    temp_paths = "\n".join(f"    {directive} {workdir}/tmp/{sub};" for directive, sub in TEMP_DIRS.items())
    return f"""daemon off;
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
{logging_lines}
{temp_paths}
{http_body.rstrip()}
}}
"""


def nginx_argv(binary: str, workdir: Path, conf: Path) -> list[str]:
    """nginx with ``workdir`` as prefix, so its startup error log is there too (not /var/log)."""
    return [binary, "-p", f"{workdir}/", "-e", f"{workdir}/error.log", "-c", str(conf)]


def start_serving_nginx(
    name: str, binary: str, workdir: Path, conf: Path, host: str, port: int, fingerprint: str, timeout: float
) -> ManagedProcess:
    """Start nginx on ``conf`` and wait until ``host:port`` presents the leaf ``fingerprint``.

    Raises ComponentFailed (with the log tail) if it exits or does not serve within ``timeout``
    seconds; it is stopped then, so a failed start leaves no process behind.
    """
    process = ManagedProcess(name, nginx_argv(binary, workdir, conf), workdir / "nginx.log").start()

    def serving() -> bool:
        try:
            return presented_fingerprint(host, port, timeout=1.0) == fingerprint
        except OSError:
            return False

    try:
        process.wait_ready(serving, timeout, "serving our TLS leaf")
    except BaseException:
        process.stop()
        raise
    return process
