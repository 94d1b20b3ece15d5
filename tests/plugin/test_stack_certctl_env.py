"""certctl's boot environment: what its current code refuses, we never send."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_certload.stack.certctl import SessionSecrets, certctl_env, standin_argv, standin_env
from pytest_certload.stack.secret import Secret, reveal_env

PLACEHOLDERS = {"change-me-in-production", "change-me-32-char-encryption-key"}


@pytest.mark.parametrize("rate_limit", [True, False])
def test_env_meets_certctl_validation(rate_limit: bool) -> None:
    secret = SessionSecrets()
    secret_env = certctl_env(
        dsn="postgresql://u:p@127.0.0.1:5/certctl?sslmode=disable",
        host="127.0.0.1",
        port=8443,
        cert=Path("/t/server.crt"),
        key=Path("/t/server.key"),
        migrations=Path("/m"),
        secret=secret,
        rate_limit=rate_limit,
    )
    for name in ("CERTCTL_DATABASE_URL", "CERTCTL_API_KEYS_NAMED", "CERTCTL_AUTH_SECRET"):
        assert isinstance(secret_env[name], Secret)  # revealed only when handed to the child
    env = reveal_env(secret_env)
    # admin role, not viewer; the bootstrap token is an admin key too, or agent registration fails
    keys = env["CERTCTL_API_KEYS_NAMED"].split(",")
    api, boot = secret.api_token.reveal(), secret.bootstrap_token.reveal()
    assert keys == [f"loadtest:{api}:admin", f"bootstrap:{boot}:admin"]
    assert env["CERTCTL_AUTH_SECRET"] and env["CERTCTL_AGENT_BOOTSTRAP_TOKEN"]
    assert len(env["CERTCTL_CONFIG_ENCRYPTION_KEY"].encode()) >= 32
    assert not PLACEHOLDERS & set(env.values())
    # never the demo seed: its network-scan targets and public-CA issuers send traffic off loopback
    assert "CERTCTL_DEMO_SEED" not in env
    assert env["CERTCTL_RATE_LIMIT_ENABLED"] == str(rate_limit).lower()
    assert (
        env["CERTCTL_DATABASE_MIGRATIONS_PATH"] == "/m" and "sslmode=disable" in env["CERTCTL_DATABASE_URL"]
    )
    assert env["CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL"] == "24h"


def test_secrets_differ_per_session_and_hide_in_repr() -> None:
    a, b = SessionSecrets(), SessionSecrets()
    assert len({a.api_token, b.api_token, a.auth_secret, a.bootstrap_token}) == 4
    assert a.api_token.reveal() not in repr(a)


def test_standin_gets_secrets_in_env_not_argv() -> None:
    secret = SessionSecrets()
    argv = standin_argv(host="127.0.0.1", port=1, cert=Path("c"), key=Path("k"), rate_limit=True)
    env = standin_env(dsn="postgresql://x", secret=secret)
    assert argv[-2:] == ["--rate-limit", "on"]
    assert secret.api_token.reveal() not in " ".join(argv)
    assert env["CERTLOAD_STANDIN_TOKEN"] == secret.api_token
