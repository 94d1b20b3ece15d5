"""The docker provider: the same stack as the native one, each component in its own container.

Two network modes:

- ``host`` (required on machines whose traffic must stay on loopback): every container shares the
  host's network namespace and listens on 127.0.0.1 on a port chosen at run time;
- ``bridge`` (what users usually have): a user-defined network, services reach each other by
  alias, and every port is published on 127.0.0.1 under the same number.

Configs, TLS files and log files live in the session workdir and are bind-mounted at the same
path, so the config writers are shared with the native provider. With ``--certload-base-image``
one local image (postgresql, nginx, apache2, haproxy, python3) runs every component; without it
the public images are used. Our Python processes (stand-in, F5 mock) run that image's ``python3``
with this package and the host's site-packages bind-mounted read-only (same CPython minor version
needed: both 3.11 here).

Every container carries ``org.testcontainers=true`` (added by testcontainers) and
``io.certload.session=<id>``; :func:`reap` removes them by that label, so nothing depends on Ryuk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sysconfig
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from pytest_certload.sidecars import configs
from pytest_certload.stack.certctl import (
    MIGRATE_ONLY_ARG,
    MIGRATE_TIMEOUT_S,
    SessionSecrets,
    certctl_env,
    prepare_database,
    standin_argv,
    standin_env,
)
from pytest_certload.stack.model import Stack, Target, loopback_target
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.ports import distinct_free_ports
from pytest_certload.stack.postgres import (
    dsn_for,
    effective_settings,
    enable_statement_stats,
    new_password,
    server_settings,
)
from pytest_certload.stack.probes import certctl_ready, certctl_version, presents_leaf, process_listens
from pytest_certload.stack.process import ComponentFailed
from pytest_certload.stack.provider import RestartUnsupported, StackProvider
from pytest_certload.stack.secret import Secret, connect_pg, reveal_env, scrub, secrets_in
from pytest_certload.stack.tls import TLSMaterial

SESSION_LABEL = "io.certload.session"
COMPONENT_LABEL = "io.certload.component"
OWNER_LABEL = "io.certload.owner"  # "<pid>:<start time>" of the pytest process that answers for it
WORKDIR_LABEL = "io.certload.workdir"  # removed with the orphans when it is one of our temp dirs
HOST = "127.0.0.1"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PYTHON_IMAGE = "python:3.11-slim-bookworm"
BASE_PG_BIN = "/usr/lib/postgresql/15/bin"
POLL_S = 0.1
AS_POSTGRES = "setpriv --reuid postgres --regid postgres --init-groups"  # execs: postgres stays PID 1

testcontainers_config.ryuk_disabled = True  # no registry: Ryuk cannot be pulled; we reap ourselves


def resolve_network_mode(requested: str) -> str:
    """'auto' means bridge when the engine has its default bridge network, host otherwise.

    An engine started with ``--bridge=none`` (as on this project's machines) cannot give containers
    a bridge; host networking with every service on 127.0.0.1 is then the only loopback-only mode.
    """
    if requested != "auto":
        return requested
    import docker

    client = docker.from_env()
    try:
        return "bridge" if client.networks.list(names=["bridge"]) else "host"
    finally:
        client.close()


def engine_answers(timeout: float = 2.0) -> bool:
    """True when a Docker engine responds to ping (DOCKER_HOST or the default socket)."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


#: an image pull that reports no progress for this long is abandoned (where no registry answers, the
#: engine refuses at once); one that makes progress may take up to PULL_LIMIT_S
PULL_STALL_S = 20.0
PULL_LIMIT_S = 600.0


def ensure_image(ref: str, stall_s: float = PULL_STALL_S, limit_s: float = PULL_LIMIT_S) -> tuple[bool, str]:
    """Is ``ref`` on the engine, or can it be pulled now? ``(True, how)`` or ``(False, why not)``.

    Looks locally first (``docker image inspect``), then pulls, giving up when the engine reports
    nothing for ``stall_s`` seconds or the pull takes longer than ``limit_s``: never hangs.
    """
    import docker

    try:
        client = docker.from_env(timeout=stall_s)
    except Exception as exc:
        return False, f"no Docker engine ({_engine_error(exc)})"
    try:
        try:
            client.images.get(ref)
            return True, "found on the engine"
        except docker.errors.ImageNotFound:
            pass
        started = time.monotonic()
        try:
            for event in client.api.pull(ref, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    return False, f"pull refused: {event['error']}"
                if time.monotonic() - started > limit_s:
                    return False, f"pull not finished after {limit_s:.0f} s"
            client.images.get(ref)
        except Exception as exc:
            return False, f"pull refused: {_engine_error(exc)}"
        return True, f"pulled in {time.monotonic() - started:.1f} s"
    finally:
        client.close()


def _engine_error(exc: Exception) -> str:
    """The engine's own words (docker-py's APIError carries them in ``explanation``), one line."""
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    if "timed out" in str(exc).lower():
        text = f"no answer from the engine for {PULL_STALL_S:.0f} s ({text})"
    return " ".join(str(text).split())[:400]


def reap(session_id: str) -> list[str]:
    """Force-remove every container and network labelled with ``session_id``; returns container names."""
    import docker

    client = docker.from_env(timeout=30)
    removed = []
    try:
        for c in client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"}):
            removed.append(c.name)
            c.remove(force=True, v=True)  # v: the anonymous volume of a durable postgres image too
        for n in client.networks.list(filters={"label": f"{SESSION_LABEL}={session_id}"}):
            n.remove()
    finally:
        client.close()
    return removed


def owner_id(pid: int) -> str:
    """``pid:start-time`` of the process that answers for a container (pid reuse cannot fake it)."""
    import psutil

    return f"{pid}:{psutil.Process(pid).create_time():.2f}"


def reap_orphans() -> list[str]:
    """Remove our containers whose owning pytest process is gone (killed with SIGKILL, crashed).

    Without Ryuk nothing else would: SIGKILL leaves no chance for finalizers.
    """
    import docker
    import psutil

    client = docker.from_env(timeout=30)
    removed = []
    try:
        for c in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            pid, _, started = c.labels[OWNER_LABEL].partition(":")
            try:
                alive = f"{psutil.Process(int(pid)).create_time():.2f}" == started
            except (psutil.NoSuchProcess, ValueError):
                alive = False
            if not alive:
                removed.append(c.name)
                with contextlib.suppress(Exception):
                    c.remove(force=True, v=True)
                workdir = Path(c.labels.get(WORKDIR_LABEL, ""))
                if workdir.name.startswith("certload-stack-") and workdir.parent == Path(
                    tempfile.gettempdir()
                ):
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        client.close()
    return removed


class LoopbackContainer(DockerContainer):
    """A container reached on 127.0.0.1 at its own port number (host mode, or published 1:1).

    testcontainers' own answers are wrong here: in host mode there are no port mappings, so
    ``get_exposed_port`` raises, and inside a container (``/.dockerenv``) the host IP comes back empty.
    """

    def get_container_host_ip(self) -> str:
        return HOST

    def get_exposed_port(self, port: int) -> int:
        return int(port)


@dataclass
class Component:
    """One started container and what is needed to report on it."""

    name: str
    container: LoopbackContainer
    image: str
    command: list[str]
    logs: list[Path] = field(default_factory=list)  # log files it writes into the workdir
    started: float = field(default_factory=time.monotonic)
    secrets: list[Secret] = field(default_factory=list, repr=False)  # scrubbed from its log tails

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        try:
            out, err = self.container.get_logs()
            text = (out + err).decode("utf-8", "replace").strip()
            if text:
                parts.append("\n".join(text.splitlines()[-lines:]))
        except Exception as exc:
            parts.append(f"(container logs unavailable: {exc})")
        for path in self.logs:
            try:
                text = path.read_text(errors="replace").strip()
            except OSError:
                continue
            if text:
                parts.append(f"[{path.name}]\n" + "\n".join(text.splitlines()[-lines:]))
        return scrub("\n".join(parts), self.secrets)

    def fail(self, reason: str) -> ComponentFailed:
        return ComponentFailed(
            self.name, f"image {self.image}: {' '.join(self.command)}", reason, self.log_tail()
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll ``check`` every 0.1 s while the container runs; seconds since the container started."""
        while True:
            status = self.container.get_wrapped_container()
            status.reload()
            if status.status in ("exited", "dead"):
                code = status.attrs.get("State", {}).get("ExitCode")
                raise self.fail(f"container exited with code {code}")
            try:
                if check():
                    return time.monotonic() - self.started
            except Exception:
                pass
            if time.monotonic() - self.started > timeout:
                raise self.fail(f"not {what} after {timeout:.0f} s")
            time.sleep(POLL_S)  # readiness polling interval, not synchronisation


class DockerProvider(StackProvider):
    """Starts the stack as containers; :meth:`stop` removes every one of them."""

    def __init__(
        self,
        opts: StackOptions,
        workdir: Path,
        tls: TLSMaterial,
        secret: SessionSecrets,
        session_id: str,
        owner_pid: int | None = None,
    ) -> None:
        self.opts, self.workdir, self.tls, self.secret, self.session_id = (
            opts,
            workdir,
            tls,
            secret,
            session_id,
        )
        self.host_mode = resolve_network_mode(opts.docker_network) == "host"
        self.listen = HOST if self.host_mode else "0.0.0.0"
        self.network: Network | None = None
        self.components: list[Component] = []
        self.owner = owner_id(owner_pid or os.getpid())
        self.pg_settings: dict[str, str] = {}  # durability settings as PostgreSQL reports them
        self.restartable: dict[str, tuple] = {}  # name -> (component, url or dsn, port): faults/
        self.pg_data: str | None = None

    # -- images ------------------------------------------------------------------------------
    def image_for(self, role: str) -> str:
        if self.opts.base_image:
            return self.opts.base_image
        return self.opts.images.get(role, PYTHON_IMAGE)

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        for comp in reversed(self.components):
            with contextlib.suppress(Exception):  # already gone
                comp.container.get_wrapped_container().remove(force=True, v=True)
        self.components.clear()
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.remove()
            self.network = None
        with contextlib.suppress(Exception):  # engine gone: nothing to reap
            reap(self.session_id)  # anything a crash left half-created

    def container_names(self) -> list[str]:
        return [c.container.get_wrapped_container().name for c in self.components if c.container._container]

    def _start(self) -> Stack:
        timeout = self.opts.ready_timeout
        reap_orphans()
        if not self.host_mode:
            self.network = Network(docker_network_kw={"labels": {SESSION_LABEL: self.session_id}}).create()
        components: dict[str, dict] = {}
        skipped: dict[str, str] = {}
        pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="certload-ready")
        pending: list[tuple[str, Component, int, Future[float]]] = []
        names = ("nginx", "apache", "haproxy", "f5", "certctl", "postgresql")
        ports = dict(zip(names, distinct_free_ports(len(names)), strict=True))
        for name in ("nginx", "apache", "haproxy", "f5"):
            port = ports[name]
            comp = self._target(name, port)
            probe = partial(self._is_ours, comp, port)
            pending.append(
                (name, comp, port, pool.submit(comp.wait_ready, probe, timeout, "presenting our leaf"))
            )
        pool.shutdown(wait=False)

        pg, pg_port, password, pg_version = self._postgres(timeout, ports["postgresql"])
        components["postgresql"] = {
            "image": pg.image,
            "command": " ".join(pg.command),
            "ready_s": time.monotonic() - pg.started,
            "version": pg_version,
            "profile": self.opts.pg_profile,
        }
        host_dsn = dsn_for("certload", password, pg_port, "certctl")
        inner_dsn = (
            host_dsn if self.host_mode else dsn_for("certload", password, pg_port, "certctl", "postgres")
        )

        server, comp, url = self._certctl(inner_dsn, ports["certctl"], host_dsn)
        self.restartable = {"certctl": (comp, url, ports["certctl"]), "postgresql": (pg, host_dsn, pg_port)}
        ready_s = comp.wait_ready(
            lambda: certctl_ready(url, str(self.tls.ca_cert)) and self._listens(comp, ports["certctl"]),
            timeout,
            "answering /health and /ready",
        )
        version = certctl_version(url, str(self.tls.ca_cert))
        components["certctl"] = {
            "image": comp.image,
            "command": " ".join(comp.command),
            "ready_s": ready_s,
            "version": version,
        }

        targets: dict[str, Target] = {}
        for name, tcomp, port, ready in pending:
            components[name] = {
                "image": tcomp.image,
                "command": " ".join(tcomp.command),
                "ready_s": ready.result(),
            }
            targets[name] = loopback_target(name, port, self.tls.fingerprint_sha256, HOST)
        enable_statement_stats(host_dsn)  # the server-side sampler's per-statement figures
        return Stack(
            kind="docker",
            certctl_url=url,
            token=self.secret.api_token,
            ca_bundle=self.tls.ca_cert,
            server=server,
            owned=True,
            dsn=host_dsn,
            targets=targets,
            server_version=version if server == "certctl" else None,
            postgres_version=pg_version,
            pg_profile=self.opts.pg_profile,
            pg_settings=self.pg_settings,
            pg_data=self.pg_data,
            rate_limit_enabled=self.opts.rate_limit,
            bootstrap_token=self.secret.bootstrap_token,
            components=components,
            skipped=skipped,
            server_container=comp.container.get_wrapped_container().id,
            postgres_container=pg.container.get_wrapped_container().id,
        )

    # -- faults and health ---------------------------------------------------------------------
    def dead_components(self) -> dict[str, str]:
        dead = {}
        for comp in self.components:
            if comp.name == "certctl-migrate":
                continue  # runs once and exits by design
            with contextlib.suppress(Exception):  # engine unreachable: nothing to say per container
                state = comp.container.get_wrapped_container()
                state.reload()
                if state.status in ("exited", "dead"):
                    code = state.attrs.get("State", {}).get("ExitCode")
                    tail = "\n".join("    " + ln for ln in comp.log_tail().splitlines())
                    dead[comp.name] = f"container exited with code {code}\n  last lines of its log:\n{tail}"
        return dead

    def cannot_restart(self, name: str) -> str | None:
        if name not in self.restartable:
            return f"the docker stack has no component {name!r} to restart"
        if name == "postgresql" and (self.opts.pg_profile == "fast" or self.opts.base_image):
            return (
                "restarting PostgreSQL's container loses its data with the fast profile (tmpfs) and "
                "re-runs initdb with --certload-base-image; use the native stack or the durable profile "
                "with the official image"
            )
        return None

    def restart_component(self, name: str, signum: int = signal.SIGTERM) -> float:
        """Restart the certctl (stand-in) or PostgreSQL container: ``docker stop`` (SIGTERM, then
        SIGKILL after 10 s) or ``docker kill`` (SIGKILL), then ``docker start``; wait until ready.

        PostgreSQL only when its data survives a restart: the official image with the durable
        profile (``fast`` keeps data on tmpfs, the base image's script runs initdb at every start).
        """
        why_not = self.cannot_restart(name)
        if why_not:
            raise RestartUnsupported(why_not)
        comp, where, port = self.restartable[name]
        container = comp.container.get_wrapped_container()
        if signum == signal.SIGKILL:
            container.kill(signal="SIGKILL")
            container.wait(timeout=30)
        else:
            container.stop(timeout=10)
        container.start()
        comp.started = time.monotonic()
        if name == "certctl":
            ca = str(self.tls.ca_cert)
            ready = lambda: certctl_ready(where, ca) and self._listens(comp, port)  # noqa: E731
            return comp.wait_ready(ready, self.opts.ready_timeout, "answering /health and /ready")

        def accepts() -> bool:
            with connect_pg(where, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True

        return comp.wait_ready(accepts, self.opts.ready_timeout, "accepting connections")

    # -- containers --------------------------------------------------------------------------
    def _run(
        self,
        name: str,
        image: str,
        command: list[str],
        port: int,
        *,
        env: dict[str, str | Secret] | None = None,
        mounts: tuple[tuple[Path | str, str], ...] = (),
        tmpfs: str | None = None,
        working_dir: Path | None = None,
        alias: str | None = None,
        logs: tuple[Path, ...] = (),
    ) -> Component:
        container = LoopbackContainer(image, command=command)  # env: only while it is created, below
        container.with_name(f"certload-{self.session_id[:12]}-{name.replace(' ', '-')}")
        labels = {
            SESSION_LABEL: self.session_id,
            COMPONENT_LABEL: name,
            OWNER_LABEL: self.owner,
            WORKDIR_LABEL: str(self.workdir),
        }
        kwargs: dict = {"labels": labels}
        if self.host_mode:
            kwargs["network_mode"] = "host"
        else:
            assert self.network is not None
            container.with_network(self.network).with_network_aliases(alias or name)
            container.with_bind_ports(port, (HOST, port))  # type: ignore[arg-type] - docker-py accepts (ip, port)
        for src, mode in ((self.tls.directory, "ro"), *mounts):
            container.with_volume_mapping(str(src), str(src), mode)
        if tmpfs:
            container.with_tmpfs_mount(tmpfs)
        if working_dir is not None:
            kwargs["working_dir"] = str(working_dir)
        container.with_kwargs(**kwargs)  # one call: with_kwargs replaces, it does not merge
        comp = Component(
            name, container, image, command, list(logs), secrets=secrets_in((env or {}).values())
        )
        self.components.append(comp)
        failure: ComponentFailed | None = None
        try:
            container.env = reveal_env(env) or {}
            container.start()
        except Exception as exc:
            hint = ""
            text = str(exc).lower()
            if any(
                m in text
                for m in (
                    "no such image",
                    "pull access denied",
                    "not found",
                    "manifest unknown",
                    "images/create",
                )
            ):
                hint = (
                    " (image not available locally and not pullable; on machines without a registry pass "
                    "--certload-base-image certload/base:bookworm)"
                )
            failure = ComponentFailed(
                name,
                f"image {image}: {' '.join(command)}",
                scrub(f"could not start: {exc}{hint}", comp.secrets),
            )
        finally:
            container.env = {}  # the engine has it now; nothing here keeps the plain environment
        if failure is not None:  # not chained: docker-py's frames hold the plain environment
            raise failure from None
        comp.started = time.monotonic()
        return comp

    def _migrate(
        self,
        image: str,
        command: list[str],
        port: int,
        env: dict[str, str | Secret],
        mounts: tuple[tuple[Path | str, str], ...],
        cwd: Path,
    ) -> None:
        """Run certctl once with ``--migrate-only`` (no demo seed: see stack/certctl.py) and wait."""
        comp = self._run(
            "certctl-migrate",
            image,
            [*command, MIGRATE_ONLY_ARG],
            port,
            env=env,
            mounts=mounts,
            working_dir=cwd,
        )
        try:
            code = comp.container.get_wrapped_container().wait(timeout=MIGRATE_TIMEOUT_S).get("StatusCode")
            reason = f"container exited with code {code} (during --migrate-only)"
        except Exception as exc:
            code, reason = None, f"--migrate-only did not finish: {exc}"
        if code != 0:
            failed = comp.fail(reason)
            failed.name = "certctl"  # the component that failed; its migrate step is in the command
            failed.args = (
                str(failed).replace("certctl-migrate did not come up", "certctl did not come up", 1),
            )
            raise failed

    def _listens(self, comp: Component, port: int) -> bool:
        """In host mode: the container's own process holds the listening socket (bridge: its own port)."""
        if not self.host_mode:
            return True
        pid = comp.container.get_wrapped_container().attrs.get("State", {}).get("Pid")
        return bool(pid) and process_listens(pid, port)

    def _is_ours(self, comp: Component, port: int) -> bool:
        """Our container listens on the port and presents our leaf."""
        return presents_leaf(HOST, port, self.tls.fingerprint_sha256) and self._listens(comp, port)

    def _python_mounts(self) -> tuple[tuple[Path | str, str], ...]:
        site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
        return ((PACKAGE_ROOT, "ro"), *((p, "ro") for p in sorted(site)))

    def _python_env(self) -> dict[str, str]:
        site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        return {
            "PYTHONPATH": ":".join(dict.fromkeys([str(PACKAGE_ROOT), *site])),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def _target(self, name: str, port: int) -> Component:
        wd = self.workdir / name
        wd.mkdir(parents=True, exist_ok=True)
        if name == "f5":
            cmd = configs.f5mock(wd, self.listen, port, self.tls, python="python3")
            return self._run(
                name,
                self.image_for("python"),
                cmd.argv,
                port,
                env=self._python_env(),
                mounts=self._python_mounts(),
                alias="f5",
            )
        image = self.image_for(name)
        if name == "apache":
            official = not self.opts.base_image
            cmd = configs.apache(
                wd,
                self.listen,
                port,
                self.tls,
                binary="httpd" if official else "apache2",
                module_dir=Path("/usr/local/apache2/modules" if official else "/usr/lib/apache2/modules"),
            )
        else:
            cmd = configs.WRITERS[name](wd, self.listen, port, self.tls, binary=configs.BINARIES[name])
        return self._run(name, image, cmd.argv, port, mounts=((wd, "rw"),), logs=(wd / "error.log",))

    def _postgres(self, timeout: float, port: int) -> tuple[Component, int, Secret, str]:
        """PostgreSQL with the session's profile: ``fast`` on tmpfs, ``durable`` on the engine's disk.

        Durable data lives in the container's own file system (base image) or in the anonymous
        volume the official image declares; both go when the container is removed (``v=True``).
        """
        password = new_password()
        fast = self.opts.pg_profile == "fast"
        settings = dict(server_settings(self.opts.pg_profile), listen_addresses=self.listen)
        flags = [f"-c{k}={v}" for k, v in settings.items()]
        if self.opts.base_image:
            inner = " ".join(
                [f"{BASE_PG_BIN}/postgres", "-D", "/pgdata/data", "-p", str(port), "-k", "/pgdata", *flags]
            )
            script = (
                "set -e; mkdir -p /pgdata; chown postgres /pgdata; umask 077; "
                'printf %s "$CERTLOAD_PG_PASSWORD" > /pgdata/pw; chown postgres /pgdata/pw; '
                f"{AS_POSTGRES} {BASE_PG_BIN}/initdb -D /pgdata/data -U certload -A scram-sha-256 "
                "--pwfile=/pgdata/pw -N -E UTF8 --locale=C >/dev/null; rm /pgdata/pw; "
                f"exec {AS_POSTGRES} {inner}"
            )
            env: dict[str, str | Secret] = {"CERTLOAD_PG_PASSWORD": password}
            command, tmpfs = ["bash", "-c", script], "/pgdata" if fast else None
        else:
            command = ["postgres", "-p", str(port), *flags]
            env = {
                "POSTGRES_USER": "certload",
                "POSTGRES_PASSWORD": password,
                "POSTGRES_DB": "certctl",
                "POSTGRES_INITDB_ARGS": "-N",
            }
            tmpfs = "/var/lib/postgresql/data" if fast else None
        comp = self._run(
            "postgresql", self.image_for("postgres"), command, port, env=env, tmpfs=tmpfs, alias="postgres"
        )
        versions: list[str] = []

        def accepts() -> bool:
            with connect_pg(dsn_for("certload", password, port, "postgres"), connect_timeout=2) as conn:
                versions.append(conn.execute("SHOW server_version").fetchone()[0])
                self.pg_settings = effective_settings(conn)
            return True

        comp.wait_ready(accepts, timeout, "accepting connections")
        self.pg_data = "tmpfs" if fast else self._disk_description(comp)
        if self.opts.base_image:
            with connect_pg(dsn_for("certload", password, port, "postgres"), autocommit=True) as conn:
                conn.execute('CREATE DATABASE "certctl" OWNER "certload"')
        return comp, port, password, versions[-1]

    @staticmethod
    def _disk_description(comp: Component) -> str:
        """'docker volume' or 'container file system (overlay2)': where durable data went."""
        attrs = comp.container.get_wrapped_container().attrs
        if any(m.get("Type") == "volume" for m in attrs.get("Mounts") or []):
            return "disk (docker volume)"
        return f"disk (container file system, {attrs.get('Driver') or 'unknown driver'})"

    def _certctl(self, dsn: Secret, port: int, host_dsn: Secret) -> tuple[str, Component, str]:
        url = f"https://{HOST}:{port}"
        wd = self.workdir / "certctl"
        cwd = wd / "cwd"  # empty: no web/ directory, so certctl stays in API-only mode
        cwd.mkdir(parents=True, exist_ok=True)
        kind = self.opts.server_kind
        if kind in ("image", "bin"):
            migrations = self.opts.certctl_migrations
            mounts: list[tuple[Path | str, str]] = [(cwd, "ro")]
            if migrations is not None:
                mounts.append((migrations, "ro"))
            elif kind == "image":
                migrations = Path("/app/migrations")  # the image's own, since CWD is our empty dir
            env = certctl_env(
                dsn=dsn,
                host=self.listen,
                port=port,
                cert=self.tls.server_cert,
                key=self.tls.server_key,
                migrations=migrations,
                secret=self.secret,
                rate_limit=self.opts.rate_limit,
            )
            if kind == "image":
                assert self.opts.certctl_image is not None
                image, command = self.opts.certctl_image, []
            else:
                assert self.opts.certctl_bin is not None
                mounts.append((self.opts.certctl_bin, "ro"))
                image, command = self.image_for("python"), [str(self.opts.certctl_bin)]
            self._migrate(image, command, port, env, tuple(mounts), cwd)
            prepare_database(host_dsn)
            comp = self._run(
                "certctl",
                image,
                command,
                port,
                env=env,
                mounts=tuple(mounts),
                working_dir=cwd,
                alias="certctl",
            )
            return "certctl", comp, url
        argv = standin_argv(
            host=self.listen,
            port=port,
            cert=self.tls.server_cert,
            key=self.tls.server_key,
            rate_limit=self.opts.rate_limit,
            python="python3",
        )
        env = self._python_env() | standin_env(dsn=dsn, secret=self.secret)
        comp = self._run(
            "certctl stand-in",
            self.image_for("python"),
            argv,
            port,
            env=env,
            mounts=(*self._python_mounts(), (cwd, "ro")),
            working_dir=cwd,
            alias="certctl",
        )
        return "stand-in", comp, url
