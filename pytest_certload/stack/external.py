"""The external provider: attach to a certctl someone else runs; start nothing, own nothing."""

from __future__ import annotations

import time

import pytest

from pytest_certload.stack.model import Stack, Target
from pytest_certload.stack.options import StackOptions
from pytest_certload.stack.probes import certctl_version, https_get
from pytest_certload.stack.process import ComponentFailed


def attach(opts: StackOptions, timeout: float = 10.0) -> Stack:
    """Check that ``--certctl-url`` answers /health, read its version, describe it as not owned."""
    if not opts.certctl_url or not opts.certctl_url.startswith("https://"):
        raise pytest.UsageError("--certload-stack=external needs --certctl-url https://HOST:PORT")
    if not opts.certctl_token:
        raise pytest.UsageError(
            "--certload-stack=external needs --certctl-token (or env CERTLOAD_CERTCTL_TOKEN)"
        )
    if opts.certctl_ca is not None and not opts.certctl_ca.is_file():
        raise pytest.UsageError(f"--certctl-ca {opts.certctl_ca}: no such file")
    ca = str(opts.certctl_ca) if opts.certctl_ca else None
    url = opts.certctl_url.rstrip("/")
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            status, body = https_get(url, "/health", ca)
            if status == 200:
                break
            last = f"/health answered {status}: {body[:200]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise ComponentFailed("certctl (external)", url, f"/health not 200 within {timeout:.0f} s", last)
        time.sleep(0.2)  # retry interval of the attach probe
    version = certctl_version(url, ca)
    targets = {
        name: Target(name, target_url.rstrip("/"), "/healthz" if name == "f5" else "/", None)
        for name, target_url in opts.targets.items()
    }
    return Stack(
        kind="external",
        certctl_url=url,
        token=opts.certctl_token,
        ca_bundle=opts.certctl_ca,
        server="certctl" if version else "unknown",
        owned=False,
        dsn=opts.dsn,
        targets=targets,
        server_version=version,
        rate_limit_enabled=opts.rate_limit,
        components={"certctl": {"command": f"external {url}", "version": version}},
        skipped={
            name: "not given with --certload-target (external stack)"
            for name in ("nginx", "apache", "haproxy", "f5")
            if name not in targets
        },
    )
