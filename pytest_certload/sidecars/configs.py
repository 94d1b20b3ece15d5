"""Config files and command lines for the nginx, apache and haproxy TLS targets.

They mirror certctl's loadtest fixtures (``deploy/test/loadtest/fixtures/``): one TLS listener,
TLS 1.2 and 1.3, ``/`` answers 200 ``ok``. Unlike the fixtures, each daemon listens on a port
chosen at run time and keeps every file it writes (pid, logs, temp dirs) in its own directory, so
the same config works for a local process and for a container that bind-mounts that directory at
the same path.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_certload.sidecars.nginx import make_temp_dirs, nginx_argv, nginx_conf
from pytest_certload.stack.tls import TLSMaterial

APACHE_MODULE_DIRS = ("/usr/lib/apache2/modules", "/usr/local/apache2/modules", "/usr/lib/httpd/modules")
APACHE_MODULES = ("mpm_event", "authz_core", "mime", "dir", "ssl", "socache_shmcb")


@dataclass(frozen=True)
class SidecarCommand:
    """What to run for one target: the binary name, its argv and the config written for it."""

    name: str
    binary: str
    argv: list[str]
    config: Path


def nginx(workdir: Path, listen: str, port: int, tls: TLSMaterial, binary: str = "nginx") -> SidecarCommand:
    """nginx in the foreground, one worker, ``return 200 "ok\\n"`` on ``/``."""
    make_temp_dirs(workdir)
    conf = workdir / "nginx.conf"
    server = f"""    server {{
        listen {listen}:{port} ssl;
        server_name _;
        ssl_certificate {tls.server_cert};
        ssl_certificate_key {tls.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}"""
    conf.write_text(nginx_conf(workdir, server))
    return SidecarCommand("nginx", binary, nginx_argv(binary, workdir, conf), conf)


def apache_module_dir(root: Path = Path("/")) -> Path:
    """Where mod_ssl.so lives (Debian, official httpd image, RHEL layouts), below ``root``."""
    for d in APACHE_MODULE_DIRS:
        if (root / d.lstrip("/") / "mod_ssl.so").exists():
            return Path(d)
    return Path(APACHE_MODULE_DIRS[0])


def apache(
    workdir: Path,
    listen: str,
    port: int,
    tls: TLSMaterial,
    binary: str = "apache2",
    module_dir: Path | None = None,
) -> SidecarCommand:
    """apache httpd (event MPM) in the foreground with mod_ssl; ``/`` serves an ``ok`` index."""
    module_dir = module_dir or apache_module_dir()
    htdocs = workdir / "htdocs"
    htdocs.mkdir(parents=True, exist_ok=True)
    (htdocs / "index.html").write_text("ok\n")
    modules = "\n".join(f"LoadModule {m}_module {module_dir}/mod_{m}.so" for m in APACHE_MODULES)
    conf = workdir / "httpd.conf"
    conf.write_text(
        f"""ServerRoot {workdir}
DefaultRuntimeDir {workdir}
PidFile {workdir}/httpd.pid
Mutex file:{workdir} default
{modules}
Listen {listen}:{port}
User daemon
Group daemon
ServerName certload-apache
ErrorLog {workdir}/error.log
LogLevel warn
StartServers 1
ServerLimit 2
DocumentRoot {htdocs}
DirectoryIndex index.html
TypesConfig /dev/null
AddType text/plain .html
SSLEngine On
SSLCertificateFile {tls.server_cert}
SSLCertificateKeyFile {tls.server_key}
SSLProtocol all -SSLv3 -TLSv1 -TLSv1.1
SSLCipherSuite HIGH:!aNULL:!MD5
SSLHonorCipherOrder on
SSLSessionCache none
<Directory {htdocs}>
    Require all granted
</Directory>
"""
    )
    argv = [binary, "-d", str(workdir), "-f", str(conf), "-DFOREGROUND"]
    return SidecarCommand("apache", binary, argv, conf)


def haproxy(
    workdir: Path, listen: str, port: int, tls: TLSMaterial, binary: str = "haproxy"
) -> SidecarCommand:
    """haproxy in the foreground (``-db``, no pid file), answering ``ok`` via ``http-request return``."""
    conf = workdir / "haproxy.cfg"
    conf.write_text(
        f"""global
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend https-in
    bind {listen}:{port} ssl crt {tls.server_pem}
    http-request return status 200 content-type text/plain lf-string "ok\\n"
"""
    )
    argv = [binary, "-db", "-f", str(conf)]
    return SidecarCommand("haproxy", binary, argv, conf)


def f5mock(
    workdir: Path, listen: str, port: int, tls: TLSMaterial, python: str = "python3"
) -> SidecarCommand:
    """Our F5 iControl mock (:mod:`pytest_certload.sidecars.f5mock`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        python,
        "-m",
        "pytest_certload.sidecars.f5mock",
        "--host",
        listen,
        "--port",
        str(port),
        "--cert",
        str(tls.server_cert),
        "--key",
        str(tls.server_key),
    ]
    return SidecarCommand("f5", python, argv, workdir)


Writer = Callable[..., SidecarCommand]
WRITERS: dict[str, Writer] = {"nginx": nginx, "apache": apache, "haproxy": haproxy}
BINARIES = {"nginx": "nginx", "apache": "apache2", "haproxy": "haproxy"}


def find_binary(name: str) -> str | None:
    """Absolute path of a target's daemon on PATH (non-root users may need /usr/sbin on theirs)."""
    candidates = {"apache": ("apache2", "httpd")}.get(name, (BINARIES[name],))
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return found
    return None
