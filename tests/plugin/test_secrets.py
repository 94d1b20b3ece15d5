"""Secrets never reach output (issue 11, part A).

The admin token and a DSN's password are :class:`~pytest_certload.stack.secret.Secret`: masked in
every printable form, refused by JSON and pickle, revealed only at the socket. The unit tests below
pin those semantics; the end-to-end tests force a failure in each place that handles a secret -
SQL seeding, API seeding, stack start, a load phase - in an inner pytest session run with
``--tb=long -l -vv`` (long tracebacks with every frame's locals, untruncated), ``--junitxml=`` and
``--certload-summary=``, and assert that a known token and a known database password appear in
none of stdout, stderr, the JUnit XML or the summary.

All traffic stays on 127.0.0.1: a small HTTPS server in this process plays certctl (it answers
/health and /ready, and every API call with a 500 whose body *echoes the request's Authorization
header*, as a careless server might), and the database is a loopback PostgreSQL or a loopback port
with nothing listening.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import pickle
import ssl
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import calibration  # tests/plugin/calibration.py
import pytest

from pytest_certload.stack.model import Stack
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.postgres import NativePostgres, find_pg_bin
from pytest_certload.stack.process import ManagedProcess
from pytest_certload.stack.secret import DsnSecret, Secret, connect_pg, mask_dsn, reveal_env, scrub
from pytest_certload.stack.tls import TLSMaterial, make_tls_material

pytest_plugins = ["pytester"]

TOKEN = "tok-SECRET-4f1c8e27b9d0"
PASSWORD = "pw-SECRET-9a7e31c0b8d2"
REPO_SEEDS = Path(__file__).resolve().parents[2] / "seeds"
# -vv: locals printed in full (pytest truncates long reprs at lower verbosity, which could hide a leak)
OUTPUT_ARGS = ("--tb=long", "-l", "-vv", "--junitxml=junit.xml", "--certload-summary=summary.json")
# a busy CI machine must not turn a 1 s phase into a generator-saturation ERROR
RELAXED_HEALTH = calibration.RELAXED_HEALTH_INI


# -- the type ------------------------------------------------------------------------------------


def test_secret_never_prints_its_value() -> None:
    s = Secret(TOKEN)
    shown = [repr(s), str(s), f"{s}", f"{s!r}", f"{s:>40}", "%s" % s, "%r" % (s,), "{}".format(s)]  # noqa: UP031, UP032
    assert all(TOKEN not in text for text in shown)
    assert repr(s) == "Secret('***')" and s.reveal() == TOKEN
    with pytest.raises(TypeError):
        json.dumps({"token": s})
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        "x" + s  # type: ignore[operator]  # not a str: no silent concatenation
    with pytest.raises(AttributeError):
        s._value = "other"  # type: ignore[misc]
    assert copy.deepcopy(s) == s and Secret(s) == s and s != Secret("other") and s != TOKEN
    assert Secret.compose("Bearer {}", s).reveal() == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (f"postgresql://certload:{PASSWORD}@127.0.0.1:5432/certctl?sslmode=disable",
         "postgresql://certload:***@127.0.0.1:5432/certctl?sslmode=disable"),
        (f"postgresql://127.0.0.1/certctl?user=u&password={PASSWORD}",
         "postgresql://127.0.0.1/certctl?user=u&password=***"),
        (f"host=127.0.0.1 user=u password={PASSWORD} dbname=certctl",
         "host=127.0.0.1 user=u password=*** dbname=certctl"),
        (f"host=127.0.0.1 password='{PASSWORD} x' dbname=certctl",
         "host=127.0.0.1 password=*** dbname=certctl"),
        ("postgresql://127.0.0.1/certctl", "postgresql://127.0.0.1/certctl"),
    ],
    ids=["url-userinfo", "url-query", "key-value", "key-value-quoted", "no-password"],
)  # fmt: skip
def test_dsn_prints_with_its_password_masked(dsn: str, shown: str) -> None:
    secret = DsnSecret(dsn)
    assert str(secret) == mask_dsn(dsn) == shown and f"{secret}" == shown
    assert repr(secret) == f"DsnSecret({shown!r})"
    password = secret.password()
    if password:
        assert PASSWORD in password
        assert PASSWORD not in scrub(f"log: {dsn} / {password}", [secret])


def test_stack_and_options_hold_secrets_typed_and_masked() -> None:
    dsn = f"postgresql://certload:{PASSWORD}@127.0.0.1:1/certctl"
    stack = Stack(kind="external", certctl_url="https://127.0.0.1:1", token=TOKEN, ca_bundle=None,  # type: ignore[arg-type]
                  server="unknown", owned=False, dsn=dsn, bootstrap_token=TOKEN)  # type: ignore[arg-type]  # fmt: skip
    assert isinstance(stack.token, Secret) and isinstance(stack.dsn, DsnSecret)
    opts = StackOptions(certctl_token=TOKEN, dsn=dsn)  # type: ignore[arg-type]
    assert isinstance(opts.certctl_token, Secret) and isinstance(opts.dsn, DsnSecret)
    text = repr(stack) + repr(opts) + json.dumps(stack.describe()) + str(dataclasses.asdict(stack))
    assert TOKEN not in text and PASSWORD not in text
    with pytest.raises(TypeError):
        pickle.dumps(stack)
    with pytest.raises(TypeError):
        json.dumps(dataclasses.asdict(stack))


def test_xdist_handover_keeps_secrets_in_a_private_file(tmp_path: Path) -> None:
    from pytest_certload.stack.session import TeardownHandle, read_shared, write_shared

    dsn = f"postgresql://certload:{PASSWORD}@127.0.0.1:1/certctl"
    stack = Stack(kind="native", certctl_url="https://127.0.0.1:1", token=Secret(TOKEN), ca_bundle=None,
                  server="stand-in", owned=True, dsn=DsnSecret(dsn),
                  bootstrap_token=Secret(TOKEN + "b"))  # fmt: skip
    write_shared(tmp_path, stack, TeardownHandle("s", "native"))
    for path in tmp_path.iterdir():
        if path.name == "certload-stack.secrets.json":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        else:
            assert TOKEN not in path.read_text() and PASSWORD not in path.read_text(), path.name
    back = read_shared(tmp_path)
    assert isinstance(back, Stack) and isinstance(back.dsn, DsnSecret)
    assert (back.token, back.dsn, back.bootstrap_token) == (stack.token, stack.dsn, stack.bootstrap_token)


def test_process_env_is_revealed_only_for_the_child(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "CERTCTL_AUTH_SECRET": Secret(TOKEN)}
    proc = ManagedProcess("echo", ["sh", "-c", 'echo "key=$CERTCTL_AUTH_SECRET"'], tmp_path / "log", env=env)
    assert TOKEN not in repr(proc)
    assert reveal_env(env) == {"PATH": os.environ["PATH"], "CERTCTL_AUTH_SECRET": TOKEN}
    proc.start()
    assert proc.popen is not None and proc.popen.wait(10) == 0
    assert (tmp_path / "log").read_text().strip() == f"key={TOKEN}"  # the child got the plain value
    assert proc.log_tail() == "key=***"  # what an error message would quote
    proc.stop()


def test_connect_failure_is_scrubbed_and_not_chained() -> None:
    import psycopg

    dsn = DsnSecret(f"postgresql://certload:{PASSWORD}@127.0.0.1:{free_port()}/certctl?connect_timeout=2")
    with pytest.raises(psycopg.OperationalError) as info:
        connect_pg(dsn)
    assert info.value.__suppress_context__ and info.value.__cause__ is None
    assert PASSWORD not in str(info.value) and PASSWORD not in str(
        info.getrepr(showlocals=True, style="long")
    )


# -- a certctl double on loopback ------------------------------------------------------------------


class _EchoingCertctl(BaseHTTPRequestHandler):
    """/health and /ready: 200. Anything else: 500, quoting the request's Authorization header."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path in ("/health", "/ready"):
            status, body = 200, b'{"status":"ok"}'
        else:
            status = 500
            body = f"internal error; you sent Authorization: {self.headers.get('Authorization')}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return make_tls_material(tmp_path_factory.mktemp("secrets-tls"))


@pytest.fixture(scope="module")
def certctl_double(tls: TLSMaterial) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoingCertctl)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls.server_cert), str(tls.server_key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="certctl-double", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def empty_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativePostgres]:
    """A loopback PostgreSQL whose role has the known password and whose database has no tables."""
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL >= 15 binaries (apt-get install postgresql)")
    pg = NativePostgres(tmp_path_factory.mktemp("secrets-pg"), password=Secret(PASSWORD))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(RELAXED_HEALTH)
    seeds = pytester.mkdir("seeds")
    for name in ("bulk_renewal", "agent_fleet"):  # the real fleets, shrunk to a few rows
        text = (REPO_SEEDS / f"{name}.toml").read_text()
        (seeds / f"{name}.toml").write_text(text.replace("count = 10000", "count = 4").replace(
            "count = 5000", "count = 4"))  # fmt: skip
    return pytester


def external_args(url: str, tls: TLSMaterial, *extra: str) -> list[str]:
    return [
        "-p", "no:cacheprovider", "--certload-stack=external", f"--certctl-url={url}",
        f"--certctl-token={TOKEN}", f"--certctl-ca={tls.ca_cert}", "--certload-allow-external-load",
        "--certload-seeds-dir=seeds", *OUTPUT_ARGS, *extra,
    ]  # fmt: skip


def assert_nothing_leaked(pytester: pytest.Pytester, result: pytest.RunResult, *secrets: str) -> str:
    """No secret in stdout, stderr, the JUnit XML or the summary; returns everything that was read."""
    junit = pytester.path / "junit.xml"
    assert junit.is_file(), "the inner run wrote no JUnit XML"
    summary = pytester.path / "summary.json"
    texts = {
        "stdout": result.stdout.str(),
        "stderr": result.stderr.str(),
        "junit": junit.read_text(),
        "summary": summary.read_text() if summary.is_file() else "",
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}... appears in the inner run's {where}"
    return "\n".join(texts.values())


SEEDING_TEST = """
import pytest

@pytest.mark.certload(fleets=["bulk_renewal"])
def test_needs_a_fleet(certload_fleets):
    assert certload_fleets["bulk_renewal"].present == 4
"""


# -- (1) seeding over SQL ----------------------------------------------------------------------------


def test_sql_seeding_into_an_unreachable_database_shows_no_secret(
    inner: pytest.Pytester, certctl_double: str, tls: TLSMaterial
) -> None:
    inner.makepyfile(test_seed=SEEDING_TEST)
    dsn = f"postgresql://certload:{PASSWORD}@127.0.0.1:{free_port()}/certctl?connect_timeout=3"
    result = inner.runpytest_subprocess(
        *external_args(certctl_double, tls, f"--certload-dsn={dsn}", "--certload-seed-via=sql")
    )
    result.assert_outcomes(errors=1)
    text = assert_nothing_leaked(inner, result, TOKEN, PASSWORD)
    assert "OperationalError" in text and "Connection refused" in text  # the reason is still there
    assert "postgresql://certload:***@127.0.0.1" in text  # the DSN shows where, not the password


def test_sql_seeding_into_a_database_without_the_tables_shows_no_secret(
    inner: pytest.Pytester, certctl_double: str, tls: TLSMaterial, empty_postgres: NativePostgres
) -> None:
    inner.makepyfile(test_seed=SEEDING_TEST)
    dsn = f"postgresql://certload:{PASSWORD}@127.0.0.1:{empty_postgres.port}/certctl"
    result = inner.runpytest_subprocess(
        *external_args(certctl_double, tls, f"--certload-dsn={dsn}", "--certload-seed-via=sql")
    )
    result.assert_outcomes(errors=1)
    text = assert_nothing_leaked(inner, result, TOKEN, PASSWORD)
    assert "SchemaMismatch" in text and "managed_certificates" in text


# -- (2) seeding over the API ------------------------------------------------------------------------


def test_api_seeding_against_a_failing_server_shows_no_secret(
    inner: pytest.Pytester, certctl_double: str, tls: TLSMaterial
) -> None:
    inner.makepyfile(test_seed=SEEDING_TEST)
    result = inner.runpytest_subprocess(*external_args(certctl_double, tls, "--certload-seed-via=api"))
    result.assert_outcomes(errors=1)
    text = assert_nothing_leaked(inner, result, TOKEN)
    # the server's answer is quoted, with the token it echoed scrubbed
    assert "SeedVerificationError" in text and "you sent Authorization: Bearer ***" in text


# -- (3) stack start ---------------------------------------------------------------------------------

KNOWN_SESSION_SECRETS = f"""
import types

from pytest_certload.stack import certctl, postgres

# the session's random secrets made known, so the outer test can look for them
_count = iter(range(1000))
certctl.secrets = types.SimpleNamespace(
    token_urlsafe=lambda n=32: "{TOKEN}-" + str(next(_count)), token_hex=lambda n=32: "{TOKEN}-hex"
)
postgres.secrets = types.SimpleNamespace(token_urlsafe=lambda n=18: "{PASSWORD}")
"""


def test_native_stack_whose_certctl_fails_shows_no_secret(inner: pytest.Pytester) -> None:
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL >= 15 binaries (apt-get install postgresql)")
    inner.makeconftest(KNOWN_SESSION_SECRETS)
    inner.makepyfile(test_stack="def test_needs_the_stack(certload_stack):\n    pass\n")
    # a certctl that logs its database URL and its keys, then dies: the log tail is quoted in the error
    binary = inner.path / "certctl-server"
    binary.write_text(
        "#!/bin/sh\n"
        'echo "FATAL: database $CERTCTL_DATABASE_URL unusable; keys $CERTCTL_API_KEYS_NAMED '
        'bootstrap $CERTCTL_AGENT_BOOTSTRAP_TOKEN" >&2\n'
        "exit 3\n"
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    (inner.mkdir("migrations") / "000001_init.up.sql").write_text("SELECT 1;\n")
    result = inner.runpytest_subprocess(
        "-p", "no:cacheprovider", "--certload-stack=native", f"--certctl-bin={binary}",
        f"--certctl-migrations={inner.path / 'migrations'}", *OUTPUT_ARGS,
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    text = assert_nothing_leaked(inner, result, TOKEN, PASSWORD)
    assert (
        "certctl did not come up" in text and "FATAL: database *** unusable; keys *** bootstrap ***" in text
    )


# -- (4) a load phase --------------------------------------------------------------------------------

CAR = 'executor="constant-arrival-rate", rate=10, time_unit="1s", duration="1s", pre_allocated_vus=2'

LOAD_TESTS = f"""
import pytest

from pytest_certload.scenarios import api
from pytest_certload.scenarios.common import auth_headers
from pytest_certload.stack.model import Secret


@pytest.mark.certload({CAR}, thresholds={{"http_req_failed": ["rate<0.01"]}})
def test_scenario_breaches_its_threshold(certload, certload_stack):
    result = certload.run(api.list_certificates(certload_stack), name="list_certificates")
    result.assert_thresholds()


@pytest.mark.certload({CAR})
def test_iteration_and_test_assertions_fail(certload, certload_stack):
    async def iteration(ctx):
        resp = await ctx.request("GET", certload_stack.certctl_url + "/api/v1/certificates",
                                 headers=auth_headers(certload_stack))
        assert resp.status == 200, certload_stack

    result = certload.run(iteration, name="asserting_iteration")
    assert certload_stack.token == Secret("another token"), result
"""


def test_failing_load_phase_shows_no_secret(
    inner: pytest.Pytester, certctl_double: str, tls: TLSMaterial
) -> None:
    inner.makepyfile(test_load=LOAD_TESTS)
    result = inner.runpytest_subprocess(*external_args(certctl_double, tls))
    result.assert_outcomes(failed=2)
    text = assert_nothing_leaked(inner, result, TOKEN)
    assert (inner.path / "summary.json").is_file()
    assert "http_req_failed" in text and "Secret('***')" in text


def test_a_composed_secret_scrubs_its_parts_shown_alone() -> None:
    """certctl gets the token only inside CERTCTL_API_KEYS_NAMED; a log line showing the token alone
    must still be scrubbed."""
    from pytest_certload.stack.secret import Secret, scrub

    token = Secret("tok-SECRET-composed-4f1c")
    named = Secret.compose("loadtest:{}:admin", token)
    assert scrub("key tok-SECRET-composed-4f1c accepted", [named]) == "key *** accepted"
    assert "tok-SECRET" not in repr(named) + str(named)
