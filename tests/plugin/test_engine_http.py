"""The lean HTTP/1.1 client against the calibration server (its own process), plain and TLS."""

from __future__ import annotations

import asyncio
import time

import calibration  # tests/plugin/calibration.py (pytest puts this directory on sys.path)
import pytest

from pytest_certload.engine import ExecutorSpec, HttpClient, ScenarioRun, make_ssl_context, run_phase
from pytest_certload.engine.phase import event_loop_factory
from pytest_certload.stack.ports import free_port
from pytest_certload.stack.tls import make_tls_material


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory, tls):
    workdir = tmp_path_factory.mktemp("calibration")
    plain, plain_url = calibration.start_server(workdir)
    try:
        secure, secure_url = calibration.start_server(workdir, tls=tls)
    except BaseException:
        plain.stop()
        raise
    yield {"http": plain_url, "https": secure_url}
    plain.stop()
    secure.stop()


def run(coro_fn):
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(coro_fn())


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_keep_alive_reuses_and_new_connection_connects_every_time(servers, tls, scheme):
    url = servers[scheme] + "/fast"

    async def go():
        client = HttpClient(tls.client_context())
        pooled = [await client.request("GET", url) for _ in range(3)]
        fresh = [await client.request("GET", url, new_connection=True) for _ in range(3)]
        client.close()
        return pooled, fresh

    pooled, fresh = run(go)
    assert [r.status for r in pooled + fresh] == [200] * 6
    assert all(r.body == b"ok" and r.headers["content-length"] == "2" for r in pooled + fresh)
    assert pooled[0].connecting_ns > 0  # the pool opened its first connection for this request
    assert [r.connecting_ns for r in pooled[1:]] == [0, 0]
    assert [r.tls_ns for r in pooled[1:]] == [0, 0]
    assert all(r.connecting_ns > 0 for r in fresh)
    assert all(r.waiting_ns > 0 for r in pooled + fresh)
    if scheme == "https":
        assert pooled[0].tls_ns > 0
        assert all(r.tls_ns > 0 for r in fresh)
        assert {r.tls_version for r in fresh} == {"TLSv1.3"}
    else:
        assert all(r.tls_ns == 0 for r in pooled + fresh)


def test_chunked_head_eof_close_and_bodies(servers, tls):
    base = servers["https"]

    async def go():
        client = HttpClient(tls.client_context())
        out = {
            "chunked": await client.request("GET", base + "/chunked?n=40"),
            "head": await client.request("HEAD", base + "/fast"),
            "after_head": await client.request("GET", base + "/fast"),  # same connection, fresh parser
            "eof": await client.request("GET", servers["http"] + "/eof"),
            "close": await client.request("GET", base + "/close"),
            "after_close": await client.request("GET", base + "/fast"),
            "echo": await client.request("POST", base + "/echo", body=b"x" * 100_000),
            "missing": await client.request("GET", base + "/nope"),
        }
        client.close()
        return out

    r = run(go)
    assert r["chunked"].body == b"".join(f"chunk-{i};".encode() for i in range(40))
    assert r["head"].status == 200 and r["head"].body == b"" and r["head"].headers["content-length"] == "2"
    assert r["after_head"].body == b"ok" and r["after_head"].connecting_ns == 0
    assert r["eof"].body == b"until-eof-body"
    assert r["close"].body == b"closing"
    assert r["after_close"].status == 200 and r["after_close"].connecting_ns > 0  # closed one was not reused
    assert r["echo"].body == b"x" * 100_000
    assert r["missing"].status == 404 and r["missing"].error == ""


def test_connection_refused_is_status_0_and_counted_failed(servers):
    dead = f"http://127.0.0.1:{free_port()}/fast"

    async def it(ctx):
        await ctx.request("GET", dead)
        await ctx.request("GET", servers["http"] + "/status/404", expected=lambda s: s == 404)
        await ctx.request("GET", servers["http"] + "/status/503")

    spec = ExecutorSpec.from_options({"executor": "constant-vus", "vus": 1, "duration": "300ms"})
    result = run_phase([ScenarioRun("refused", spec, it)]).samples
    refused = {"scenario": "refused", "status": "0"}
    trues, total = result.select_rate("http_req_failed", refused)
    assert total > 0 and trues == total
    assert (
        result.select_counter("http_reqs", {"status_class": "error", "error": "connection_refused"}) == total
    )
    assert result.select_rate("http_req_failed", {"status": "404"})[0] == 0  # declared expected
    t503, n503 = result.select_rate("http_req_failed", {"status": "503"})
    assert n503 > 0 and t503 == n503
    assert result.meta["scenarios"]["refused"]["iteration_errors"] == 0  # no exception escaped


def test_tls_verification_fails_against_a_wrong_ca(servers, tmp_path):
    other_ca = make_tls_material(tmp_path / "other")

    async def go():
        out = []
        for ctx in (other_ca.client_context(), None, make_ssl_context(insecure=True)):  # None: system store
            client = HttpClient(ctx)
            out.append(await client.request("GET", servers["https"] + "/fast"))
            client.close()
        return out

    wrong, system, insecure = run(go)
    assert wrong.status == 0 and wrong.error.startswith("tls_verify_failed")
    assert system.status == 0 and system.error.startswith("tls_verify_failed")
    assert insecure.status == 200  # only with the explicit switch


def test_timeout_is_status_0_and_bounded(servers):
    async def go():
        client = HttpClient(timeout=5.0)
        t0 = time.monotonic()
        slow = await client.request("GET", servers["http"] + "/delay?ms=2000", timeout=0.1)
        took = time.monotonic() - t0
        ok = await client.request("GET", servers["http"] + "/delay?ms=1")
        client.close()
        return slow, took, ok

    slow, took, ok = run(go)
    assert slow.status == 0 and slow.error == "timeout"
    assert 0.09 <= took < 1.0
    assert ok.status == 200


def test_bounded_pool_queues_requests(servers):
    async def go():
        client = HttpClient(max_connections_per_origin=2)
        t0 = time.monotonic()
        rs = await asyncio.gather(
            *(client.request("GET", servers["http"] + "/delay?ms=100") for _ in range(6))
        )
        client.close()
        return rs, time.monotonic() - t0

    rs, took = run(go)
    assert [r.status for r in rs] == [200] * 6
    assert sum(1 for r in rs if r.connecting_ns > 0) == 2  # never more than 2 connections opened
    assert took >= 0.29  # 6 requests, 2 at a time, 100 ms each
