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
from dataclasses import dataclass, field
from pathlib import Path

from pytest_certload.sidecars.nginx import (
    NOT_INSTALLED,
    make_temp_dirs,
    nginx_binary,
    nginx_conf,
    start_serving_nginx,
)
from pytest_certload.stack.ports import distinct_free_ports
from pytest_certload.stack.process import ManagedProcess
from pytest_certload.stack.tls import TLSMaterial

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


def start_nginx_sidecar(
    workdir: Path, target_ids: list[str], tls: TLSMaterial, ready_timeout: float = 15.0
) -> NginxSidecar:
    """Start nginx with one ``listen 127.0.0.1:PORT ssl`` server per target; raises ComponentFailed."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError(NOT_INSTALLED)
    make_temp_dirs(workdir)
    (workdir / "certs").mkdir(parents=True, exist_ok=True)
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
    conf.write_text(nginx_conf(workdir, "\n".join(servers)))
    first_port = next(iter(ports.values()))
    sidecar.process = start_serving_nginx(
        "agent-sidecar-nginx", binary, workdir, conf, HOST, first_port, tls.fingerprint_sha256, ready_timeout
    )
    return sidecar
