"""nginx of the test's own for sidecar-bound targets: one nginx process per target, on loopback.

Each target gets its own nginx (its own directory, config, port, certificate and key files), as a
host with one agent and one web server has: an agent's ``nginx -s reload`` parses the whole config
and loads every certificate in it, so several agents deploying into one shared nginx fail each
other's reloads while one of them is between writing its certificate and its key ("key values
mismatch", measured here) -- a race of the set-up, not of certctl. The config handed to certctl (and
by certctl to the agent, verbatim for SQL-seeded targets) says where the files are, how to reload
(``nginx -s reload``, executed without a shell as certctl's NGINX connector does) and where to verify
(``host``/``port``). Until an agent deploys, every listener serves the session's loopback leaf. The
stack's own nginx is not touched: other tests check its fingerprint.
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
    processes: list[ManagedProcess] = field(default_factory=list)  # one nginx per target
    configs: dict[str, dict] = field(default_factory=dict)  # target id -> target config

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def start_nginx_sidecar(
    workdir: Path, target_ids: list[str], tls: TLSMaterial, ready_timeout: float = 15.0
) -> NginxSidecar:
    """Start one nginx per target (``listen 127.0.0.1:PORT ssl``); raises ComponentFailed.

    A failed start stops the ones already started.
    """
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError(NOT_INSTALLED)
    ports = dict(zip(target_ids, distinct_free_ports(len(target_ids)), strict=True))
    sidecar = NginxSidecar(workdir, binary, ports)
    try:
        for index, (target, port) in enumerate(ports.items()):
            sidecar.configs[target], process = _start_one(
                workdir / f"target-{index}", binary, target, port, tls, ready_timeout
            )
            sidecar.processes.append(process)
    except BaseException:
        sidecar.stop()
        raise
    return sidecar


def _start_one(
    workdir: Path, binary: str, target: str, port: int, tls: TLSMaterial, ready_timeout: float
) -> tuple[dict, ManagedProcess]:
    """One target's nginx: its files, its config, the target config certctl hands the agent."""
    make_temp_dirs(workdir)
    (workdir / "certs").mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    cert = workdir / "certs" / f"{target}.crt"
    key = workdir / "certs" / f"{target}.key"
    cert.write_bytes(tls.server_cert.read_bytes())
    key.write_bytes(tls.server_key.read_bytes())
    server = f"""    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok\\n"; }}
    }}"""
    conf.write_text(nginx_conf(workdir, server))
    config = {
        "cert_path": str(cert),
        "key_path": str(key),
        "reload_command": shlex.join([binary, "-p", f"{workdir}/", "-c", str(conf), "-s", "reload"]),
        "validate_command": shlex.join([binary, "-t", "-p", f"{workdir}/", "-c", str(conf)]),
        "host": HOST,
        "port": port,
    }
    name = f"agent-sidecar-nginx-{target}"
    leaf = tls.fingerprint_sha256
    process = start_serving_nginx(name, binary, workdir, conf, HOST, port, leaf, ready_timeout)
    return config, process
