"""nginx as a plain loopback target for the engine's own tests and benchmarks (not a certctl part).

The TLS-offload test (tests/plugin/test_engine_tls_offload.py) and the client benchmarks
(benchmarks/bench_engine.py, bench_http2.py, bench_agents.py) each need "nginx answering tiny
responses on a few loopback ports, with a fresh leaf": this starts it with the config frame of
:mod:`pytest_certload.sidecars.nginx` (every file in ``workdir``) and the caller's ``server`` blocks,
and returns once the first TLS port presents the leaf. Stop it with ``.process.stop()``.

    target = start_plain_nginx(workdir, SERVERS, tls_ports=1, plain_ports=1, workers=2)
    SERVERS uses {tls_port0}, {plain_port0}, ..., {cert}, {key} placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from pytest_certload.stack.tls import TLSMaterial, make_tls_material


@dataclass
class PlainNginx:
    process: ManagedProcess
    tls: TLSMaterial
    tls_ports: list[int]
    plain_ports: list[int]
    binary: str

    def url(self, index: int = 0, scheme: str = "https") -> str:
        port = (self.tls_ports if scheme == "https" else self.plain_ports)[index]
        return f"{scheme}://127.0.0.1:{port}/"


def start_plain_nginx(
    workdir: Path,
    servers: str,
    *,
    tls_ports: int = 1,
    plain_ports: int = 0,
    workers: int = 1,
    worker_connections: int = 4096,
    timeout: float = 10.0,
) -> PlainNginx:
    """nginx with ``servers`` (a format string, see the module doc); raises RuntimeError without nginx."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(NOT_INSTALLED)
    tls = make_tls_material(workdir / "tls")
    ports = distinct_free_ports(tls_ports + plain_ports)
    names = {f"tls_port{i}": p for i, p in enumerate(ports[:tls_ports])}
    names |= {f"plain_port{i}": p for i, p in enumerate(ports[tls_ports:])}
    body = servers.format(cert=tls.server_cert, key=tls.server_key, **names)
    make_temp_dirs(workdir)
    text = nginx_conf(workdir, body, worker_connections=worker_connections, workers=workers)
    conf = workdir / "nginx.conf"
    conf.write_text(text)
    process = start_serving_nginx(
        "plain-nginx", binary, workdir, conf, "127.0.0.1", ports[0], tls.fingerprint_sha256, timeout
    )
    return PlainNginx(process, tls, ports[:tls_ports], ports[tls_ports:], binary)
