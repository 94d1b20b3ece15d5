"""A small F5 BIG-IP iControl REST mock, the subset certctl's F5 connector calls.

Mirrors certctl's ``deploy/test/f5-mock-icontrol`` (facts §5) but listens where it is told, with
the session's certificate, so it can run next to the other targets on loopback. State lives in
memory and is lost on restart, like the original.

Run: ``python -m pytest_certload.sidecars.f5mock --host 127.0.0.1 --port P --cert C --key K``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import ssl

from aiohttp import web

MOCK_TOKEN = "mock-bearer-token-do-not-use-in-prod"


class F5State:
    """Uploaded files, crypto objects, transactions and client-ssl profiles."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytearray] = {}
        self.certs: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}
        self.transactions: dict[str, str] = {}
        self.profiles: dict[str, dict] = {}
        self.txn_ids = itertools.count(1)


def authorised(request: web.Request) -> bool:
    if request.headers.get("X-F5-Auth-Token") == MOCK_TOKEN:
        return True
    return request.headers.get("Authorization", "") == f"Bearer {MOCK_TOKEN}"


@web.middleware
async def require_token(request: web.Request, handler):
    if request.path in ("/healthz", "/mgmt/shared/authn/login") or authorised(request):
        return await handler(request)
    return web.Response(status=401, text="unauthorized\n")


async def json_body(request: web.Request) -> dict:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}\n") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="JSON object expected\n")
    return data


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def login(request: web.Request) -> web.Response:
    body = await json_body(request)
    user, password = body.get("username"), body.get("password")
    if not user or not password:
        return web.Response(status=401, text="username and password required\n")
    return web.json_response(
        {
            "username": user,
            "token": {"token": MOCK_TOKEN, "name": MOCK_TOKEN, "userName": user, "timeout": 3600},
        }
    )


def make_app() -> web.Application:
    state = F5State()
    app = web.Application(middlewares=[require_token], client_max_size=64 * 1024 * 1024)

    async def upload(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        buf = state.uploads.setdefault(name, bytearray())
        buf.extend(await request.read())
        return web.json_response(
            {
                "remainingByteCount": 0,
                "usedChunks": {"0": len(buf)},
                "localFilePath": f"/var/config/rest/downloads/{name}",
            }
        )

    def crypto_create(store: dict[str, dict], kind: str):
        async def create(request: web.Request) -> web.Response:
            body = await json_body(request)
            if not body.get("name"):
                return web.json_response({"code": 400, "message": f"{kind}: name is required"}, status=400)
            store[body["name"]] = body
            return web.json_response({"kind": f"tm:sys:crypto:{kind}:{kind}state", **body})

        return create

    def crypto_delete(store: dict[str, dict]):
        async def delete(request: web.Request) -> web.Response:
            if store.pop(request.match_info["name"], None) is None:
                return web.json_response({"code": 404, "message": "not found"}, status=404)
            return web.Response(status=200)

        return delete

    async def new_transaction(_: web.Request) -> web.Response:
        txn = f"txn-{next(state.txn_ids)}"
        state.transactions[txn] = "STARTED"
        return web.json_response({"transId": txn, "state": "STARTED"})

    async def transaction(request: web.Request) -> web.Response:
        txn = request.match_info["id"]
        if txn not in state.transactions:
            return web.json_response({"code": 404, "message": f"transaction {txn} not found"}, status=404)
        state.transactions[txn] = "COMPLETED"
        return web.json_response({"transId": txn, "state": "COMPLETED"})

    async def get_profile(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response(state.profiles.get(name, {"name": name, "cert": "", "key": "", "chain": ""}))

    async def put_profile(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        profile = state.profiles.setdefault(name, {"name": name})
        profile.update(await json_body(request))
        return web.json_response(profile)

    app.router.add_route("*", "/healthz", healthz)
    app.router.add_post("/mgmt/shared/authn/login", login)
    app.router.add_route("*", "/mgmt/shared/file-transfer/uploads/{name}", upload)
    app.router.add_post("/mgmt/tm/sys/crypto/cert", crypto_create(state.certs, "cert"))
    app.router.add_post("/mgmt/tm/sys/crypto/key", crypto_create(state.keys, "key"))
    app.router.add_delete("/mgmt/tm/sys/crypto/cert/{name}", crypto_delete(state.certs))
    app.router.add_delete("/mgmt/tm/sys/crypto/key/{name}", crypto_delete(state.keys))
    app.router.add_post("/mgmt/tm/transaction", new_transaction)
    app.router.add_route("*", "/mgmt/tm/transaction/{id}", transaction)
    app.router.add_get("/mgmt/tm/ltm/profile/client-ssl/{name}", get_profile)
    app.router.add_patch("/mgmt/tm/ltm/profile/client-ssl/{name}", put_profile)
    app.router.add_put("/mgmt/tm/ltm/profile/client-ssl/{name}", put_profile)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pytest_certload.sidecars.f5mock", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True, help="PEM certificate the listener presents")
    parser.add_argument("--key", required=True, help="PEM private key for --cert")
    args = parser.parse_args(argv)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    web.run_app(make_app(), host=args.host, port=args.port, ssl_context=ctx, print=None, access_log=None)


if __name__ == "__main__":
    main()
