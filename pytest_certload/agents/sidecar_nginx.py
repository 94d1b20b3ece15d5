"""An nginx of the test's own for sidecar-bound targets: one TLS listener per target, on loopback.

Each target gets its certificate and key files in the sidecar's directory and its own port; the
config handed to certctl (and by certctl to the agent, verbatim for SQL-seeded targets) says where
they are, how to reload (``nginx -s reload``, executed without a shell as certctl's NGINX
connector does) and where to verify (``host``/``port``). Until an agent deploys, every listener
serves the session's loopback leaf. The stack's own nginx is not touched: other tests check its
fingerprint.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pytest_certload.stack.ports import distinct_free_ports
from pytest_certload.stack.process import ManagedProcess
from pytest_certload.stack.tls import TLSMaterial, presented_fingerprint

HOST = "127.0.0.1"


@dataclass
class NginxSidecar:
    workdir: Path
    binary: str
    ports: dict[str, int]  # target id -> port
    process: ManagedProcess | None = None
    configs: dict[str, dict] = field(default_factory=dict)  # target id -> target config

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin:/usr/local/sbin") or None)


def start_nginx_sidecar(
    workdir: Path, target_ids: list[str], tls: TLSMaterial, ready_timeout: float = 15.0
) -> NginxSidecar:
    """Start nginx with one ``listen 127.0.0.1:PORT ssl`` server per target; raises ComponentFailed."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "certs"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    ports = dict(zip(target_ids, distinct_free_ports(len(target_ids)), strict=True))
    conf = workdir / "nginx.conf"
    servers = []
    sidecar = NginxSidecar(workdir, binary, ports)
    reload_command = shlex.join([binary, "-p", f"{workdir}/", "-c", str(conf), "-s", "reload"])
    for target, port in ports.items():
        cert = workdir / "certs" / f"{target}.crt"
        key = workdir / "certs" / f"{target}.key"
        cert.write_bytes(tls.server_cert.read_bytes())
        key.write_bytes(tls.server_key.read_bytes())
        servers.append(
            f"""    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok\\n"; }}
    }}"""
        )
        sidecar.configs[target] = {
            "cert_path": str(cert),
            "key_path": str(key),
            "reload_command": reload_command,
            "validate_command": shlex.join([binary, "-t", "-p", f"{workdir}/", "-c", str(conf)]),
            "host": HOST,
            "port": port,
        }
    body = "\n".join(servers)
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    fastcgi_temp_path {workdir}/tmp/fastcgi;
    uwsgi_temp_path {workdir}/tmp/uwsgi;
    scgi_temp_path {workdir}/tmp/scgi;
{body}
}}
"""
    )
    argv = [binary, "-p", f"{workdir}/", "-e", f"{workdir}/error.log", "-c", str(conf)]
    sidecar.process = ManagedProcess("agent-sidecar-nginx", argv, workdir / "nginx.log").start()
    first_port = next(iter(ports.values()))

    def serving() -> bool:
        try:
            return presented_fingerprint(HOST, first_port, timeout=1.0) == tls.fingerprint_sha256
        except OSError:
            return False

    try:
        sidecar.process.wait_ready(serving, ready_timeout, "serving the session leaf")
    except BaseException:
        sidecar.stop()
        raise
    return sidecar
