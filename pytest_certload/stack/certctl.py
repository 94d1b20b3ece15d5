"""How to boot certctl-server (or its stand-in) for a test session: argv, environment, secrets.

The environment follows what certctl's current code needs (certctl-facts §2, Gotchas 1-8, 18, 22):
a named admin key, non-placeholder secrets, an encryption key, an absolute migrations path, TLS
from the session's material, and the renewal scan pushed out of the test window. Secrets are
random per session and travel only in the child's environment.

certctl's demo seed is deliberately NOT loaded: it inserts enabled network-scan targets
(10.0.x.0/24, 192.168.100.0/24) that the scheduler TLS-probes at every boot, and issuers pointing
at public CAs — traffic off loopback. Instead certctl runs once with ``--migrate-only``, then
:func:`pytest_certload.standin.schema.ensure_demo_rows` inserts exactly the demo rows the scenarios
name (iss-local, o-alice, t-platform, rp-standard), and then the server starts.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pytest_certload.stack.process import ComponentFailed, ManagedProcess
from pytest_certload.stack.secret import DsnSecret, Secret, connect_pg


@dataclass(frozen=True)
class SessionSecrets:
    """Random per session; never logged, never in argv (each a :class:`Secret`: repr masks it)."""

    api_token: Secret = field(default_factory=lambda: Secret("cl_" + secrets.token_urlsafe(32)))
    auth_secret: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    bootstrap_token: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    encryption_key: Secret = field(default_factory=lambda: Secret(secrets.token_hex(32)))  # 64 bytes


Env = dict[str, "str | Secret"]


def _dsn(dsn: str | Secret) -> DsnSecret:
    return dsn if isinstance(dsn, DsnSecret) else DsnSecret(dsn)


def certctl_env(
    *,
    dsn: str | Secret,
    host: str,
    port: int,
    cert: Path,
    key: Path,
    migrations: Path | str | None,
    secret: SessionSecrets,
    rate_limit: bool,
) -> Env:
    """Environment for a real certctl-server (merged over a minimal base by the caller).

    Secret values stay :class:`Secret` here; :class:`ManagedProcess` and the docker provider reveal
    them when they hand the environment to the child.
    """
    env: Env = {
        "CERTCTL_DATABASE_URL": _dsn(dsn),
        "CERTCTL_SERVER_HOST": host,
        "CERTCTL_SERVER_PORT": str(port),
        "CERTCTL_SERVER_TLS_CERT_PATH": str(cert),
        "CERTCTL_SERVER_TLS_KEY_PATH": str(key),
        "CERTCTL_AUTH_TYPE": "api-key",
        "CERTCTL_AUTH_SECRET": secret.auth_secret,
        # the bootstrap token must also be an API key for agent registration to pass (facts §3.7)
        "CERTCTL_API_KEYS_NAMED": Secret.compose(
            "loadtest:{}:admin,bootstrap:{}:admin", secret.api_token, secret.bootstrap_token
        ),
        "CERTCTL_AGENT_BOOTSTRAP_TOKEN": secret.bootstrap_token,
        "CERTCTL_CONFIG_ENCRYPTION_KEY": secret.encryption_key,
        "CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL": "24h",
        "CERTCTL_RATE_LIMIT_ENABLED": "true" if rate_limit else "false",
        "CERTCTL_LOG_LEVEL": "warn",
        # certctl does not gate its network-scan loop on this; no scan targets exist without the demo seed
        "CERTCTL_NETWORK_SCAN_ENABLED": "false",
    }
    if migrations is not None:  # else the image's own ./migrations
        env["CERTCTL_DATABASE_MIGRATIONS_PATH"] = str(migrations)
    return env


def standin_env(*, dsn: str | Secret, secret: SessionSecrets) -> Env:
    """Environment for ``python -m pytest_certload.standin`` (secrets never in argv)."""
    return {
        "CERTLOAD_STANDIN_DSN": _dsn(dsn),
        "CERTLOAD_STANDIN_TOKEN": secret.api_token,
        "CERTLOAD_STANDIN_BOOTSTRAP_TOKEN": secret.bootstrap_token,
    }


def standin_argv(
    *, host: str, port: int, cert: Path, key: Path, rate_limit: bool, python: str = sys.executable
) -> list[str]:
    argv = [
        python,
        "-m",
        "pytest_certload.standin",
        "--host",
        host,
        "--port",
        str(port),
        "--cert",
        str(cert),
        "--key",
        str(key),
    ]
    return [*argv, "--rate-limit", "on"] if rate_limit else argv


MIGRATE_ONLY_ARG = "--migrate-only"
MIGRATE_TIMEOUT_S = 120.0


def prepare_database(dsn: str | Secret) -> None:
    """After ``--migrate-only``: the demo rows the scenarios reference, and nothing that phones out."""
    from pytest_certload.standin.schema import ensure_demo_rows

    with connect_pg(_dsn(dsn)) as conn:
        ensure_demo_rows(conn)


def migrate_and_prepare(binary: Path, env: Env, cwd: Path, log_path: Path, dsn: str | Secret) -> None:
    """Run ``certctl --migrate-only`` and wait, then insert the demo rows (see the module docstring).

    Raises ComponentFailed naming certctl, the command and the log tail when migrating fails.
    """
    migrate = ManagedProcess(
        "certctl --migrate-only", [str(binary), MIGRATE_ONLY_ARG], log_path, env=env, cwd=cwd
    ).start()
    try:
        assert migrate.popen is not None
        code: int | None = migrate.popen.wait(MIGRATE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        migrate.stop()  # idempotent; kills it if the wait timed out
    if code != 0:
        reason = "did not finish migrating" if code is None else f"--migrate-only exited with code {code}"
        raise ComponentFailed("certctl", migrate.command, reason, migrate.log_tail())
    prepare_database(dsn)


BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "PYTHONPATH", "VIRTUAL_ENV")


def ensure_prof_test(dsn: str | Secret) -> None:
    """The ACME profile every ACME scenario uses, ``prof-test`` (certctl does not seed it)."""
    with connect_pg(_dsn(dsn), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO certificate_profiles (id, name) VALUES ('prof-test', 'prof-test')"
            " ON CONFLICT DO NOTHING"
        )


@dataclass(frozen=True)
class ServerBoot:
    """What certctl and the stand-in alike are started with: their database, where they listen,
    their TLS leaf, the session's secrets and whether rate limiting is on."""

    dsn: str | Secret
    host: str
    port: int
    cert: Path
    key: Path
    secret: SessionSecrets
    rate_limit: bool


def certctl_process(
    boot: ServerBoot,
    binary: Path,
    migrations: Path | str | None,
    *,
    name: str,
    log: Path,
    cwd: Path,
    home: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> ManagedProcess:
    """certctl-server on ``boot.dsn``, which it has just migrated and we have prepared; not started.

    Its environment is :func:`certctl_env` over ours (:data:`BASE_ENV_KEYS` only; ``HOME`` is
    ``home`` when given), then ``extra_env``. The migration logs to ``<log stem>-migrate.log``.
    """
    base = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    if home is not None:
        base["HOME"] = str(home)
    env = base | certctl_env(
        dsn=boot.dsn, host=boot.host, port=boot.port, cert=boot.cert, key=boot.key,
        migrations=migrations, secret=boot.secret, rate_limit=boot.rate_limit,
    ) | (extra_env or {})  # fmt: skip
    migrate_and_prepare(binary, env, cwd, log.with_name(f"{log.stem}-migrate.log"), boot.dsn)
    return ManagedProcess(name, [str(binary)], log, env=env, cwd=cwd)


def standin_process(
    boot: ServerBoot,
    *,
    name: str,
    log: Path,
    base_env: dict[str, str],
    cwd: Path | None,
    extra_args: tuple[str, ...] = (),
) -> ManagedProcess:
    """The stand-in, secrets in its environment (over ``base_env``), ``extra_args`` after its own
    options (latency/error injection); not yet started."""
    argv = standin_argv(
        host=boot.host, port=boot.port, cert=boot.cert, key=boot.key, rate_limit=boot.rate_limit
    )
    env = base_env | standin_env(dsn=boot.dsn, secret=boot.secret)
    return ManagedProcess(name, [*argv, *extra_args], log, env=env, cwd=cwd)
