"""The load scenarios' ACME client against both targets: nonce handling, badNonce retry, failures counted.

Runs :class:`pytest_certload.scenarios.acme_client.AcmeClient` through its httpx
:class:`~pytest_certload.scenarios.acme_client.SetupContext`, the same code the engine drives.
"""

from __future__ import annotations

import asyncio
import base64
import secrets

import httpx
import pytest

from pytest_certload.scenarios.acme_certs import new_csr, new_key
from pytest_certload.scenarios.acme_client import AccountKey, AcmeClient, AcmeError, SetupContext
from tests.contract.acme_helpers import names


def made_up_nonce() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def run(target, acme, steps):
    """Run ``steps(client, ctx)`` with a fresh client on ``target``; returns (result, ctx.metrics)."""
    directory = acme[0].directory

    async def main():
        async with httpx.AsyncClient(base_url=target.base_url, verify=target.ssl_context, timeout=30) as http:
            ctx = SetupContext(http)
            client = AcmeClient(directory, {"Authorization": f"Bearer {target.token}"})
            return await steps(client, ctx), ctx.metrics

    return asyncio.run(main())


def test_a_bad_nonce_is_retried_once_and_counted(contract_target, acme):
    async def steps(client, ctx):
        account = await client.new_account(ctx, AccountKey())
        client.nonces.keep({"replay-nonce": made_up_nonce()})
        return await client.new_order(ctx, account, names())

    order, metrics = run(contract_target, acme, steps)
    assert order.status == "ready"
    assert metrics["acme_bad_nonce{step:new_order}"] == 1
    assert metrics.get("acme_nonce_fetches", 0) >= 1  # the badNonce answer carried no Replay-Nonce


def test_a_second_bad_nonce_fails_the_step(contract_target, acme):
    async def steps(client, ctx):
        account = await client.new_account(ctx, AccountKey())
        for _ in range(2):
            client.nonces.keep({"replay-nonce": made_up_nonce()})
        with pytest.raises(AcmeError) as err:
            await client.new_order(ctx, account, names())
        return err.value

    err, metrics = run(contract_target, acme, steps)
    assert (err.step, err.problem.status, err.problem.type) == ("new_order", 400, "badNonce")
    assert metrics["acme_errors{status:400,step:new_order,type:badNonce}"] == 1
    assert metrics["acme_error_without_nonce"] == 1


def test_nonces_are_reused_from_responses(contract_target, acme):
    async def steps(client, ctx):
        account = await client.new_account(ctx, AccountKey("RS256"))
        wanted = names()
        order = await client.new_order(ctx, account, wanted)
        for url in order.body["authorizations"]:
            await client.authorization(ctx, account, url)
        return account, order, wanted

    _, metrics = run(contract_target, acme, steps)
    assert metrics["acme_nonce_fetches"] == 1  # the first request only; every later one reused a Replay-Nonce


def test_finalize_failure_is_counted_by_type_and_status(contract_target, acme):
    async def steps(client, ctx):
        account = await client.new_account(ctx, AccountKey())
        order = await client.new_order(ctx, account, names())
        with pytest.raises(AcmeError) as err:  # a CSR for other names: certctl's 500 (csr-mismatch-is-500)
            await client.finalize(ctx, account, order, new_csr(names(), new_key()))
        return err.value

    err, metrics = run(contract_target, acme, steps)
    assert (err.step, err.problem.status, err.problem.type) == ("finalize", 500, "serverInternal")
    assert metrics["acme_errors{status:500,step:finalize,type:serverInternal}"] == 1
