"""Which certctl answers: ``--certctl=auto`` resolved to a binary, the published image, or the stand-in.

``auto`` takes, in order: a certctl-server binary when one is given (``--certctl-bin`` or env
``CERTLOAD_CERTCTL_BIN``); else the published image pinned in :data:`RELEASE_IMAGE` on the docker
stack, found on the engine or pulled (:func:`docker.ensure_image`: local first, a pull that gives
up fast when no registry answers); else the certctl stand-in, with the reason kept
(``fallback_reason``) for the banner at session start, the stack description and every report.

Resolution is the only step here that may touch the network, so it runs when a selected test
first needs the stack (``stack/plugin.py``), never at collection and never in a run that needs
no stack. The other choices (``standin``, ``image:REF``, ``bin:PATH``, ``url:URL``) are taken as
given: an explicit choice that cannot be had is an error, not a fallback.
"""

from __future__ import annotations

import dataclasses

from pytest_certload.stack import docker as docker_provider
from pytest_certload.stack.model import STANDIN_CAVEAT
from pytest_certload.stack.options import RELEASE_IMAGE, StackOptions
from pytest_certload.stack.secret import mask_dsn

__all__ = ["RELEASE_IMAGE", "banner_lines", "explicit_target", "resolve"]

NO_BINARY = "no certctl binary was given (--certctl=bin:PATH, --certctl-bin or env CERTLOAD_CERTCTL_BIN)"


def resolve(opts: StackOptions) -> StackOptions:
    """``opts`` with ``certctl`` settled (never "auto") and ``certctl_source`` saying how it was found.

    Idempotent: options resolved once are returned as they are.
    """
    if opts.certctl_source is not None:
        return opts
    if opts.certctl != "auto":
        return dataclasses.replace(opts, certctl_source=_explicit_source(opts))
    if opts.certctl_bin is not None:
        return dataclasses.replace(
            opts,
            certctl="bin",
            certctl_source=f"binary {opts.certctl_bin} ({opts.certctl_given})",
        )
    if opts.provider == "native":
        return _fall_back(
            opts,
            f"--certload-stack=native runs no container images (the published certctl is {RELEASE_IMAGE}), "
            f"and {NO_BINARY}",
        )
    if not docker_provider.engine_answers():
        return _fall_back(
            opts,
            "no Docker engine answers (DOCKER_HOST or /var/run/docker.sock) to run the published "
            f"certctl image {RELEASE_IMAGE}, and {NO_BINARY}",
        )
    ok, how = docker_provider.ensure_image(RELEASE_IMAGE)
    if not ok:
        return _fall_back(opts, f"the certctl image {RELEASE_IMAGE} is not on this Docker engine: {how}")
    return dataclasses.replace(
        opts,
        provider=opts.provider or "docker",
        certctl="image",
        certctl_image=RELEASE_IMAGE,
        certctl_migrations=opts.certctl_migrations,  # None: the image's own /app/migrations
        certctl_source=f"image {RELEASE_IMAGE} ({how}; {opts.certctl_given})",
    )


def _fall_back(opts: StackOptions, reason: str) -> StackOptions:
    return dataclasses.replace(
        opts,
        certctl="standin",
        certctl_source=f"the certctl stand-in ({opts.certctl_given} fell back)",
        fallback_reason=reason,
    )


def explicit_target(opts: StackOptions) -> str:
    """What an explicit choice (not auto) names: 'the certctl stand-in', 'image REF', ..."""
    return {
        "standin": "the certctl stand-in",
        "image": f"image {opts.certctl_image}",
        "bin": f"binary {opts.certctl_bin}",
        "url": f"the certctl at {mask_dsn(opts.certctl_url or '')}",  # a URL may carry a password
    }[opts.certctl]


def _explicit_source(opts: StackOptions) -> str:
    return f"{explicit_target(opts)} ({opts.certctl_given})"


def banner_lines(opts: StackOptions) -> list[str]:
    """What the session start shows once the choice is resolved: what answers, and why the stand-in."""
    lines = [f"certload: certctl: {opts.certctl_source}"]
    if opts.fallback_reason:
        lines.append(f"certload: certctl=auto fell back to the certctl stand-in: {opts.fallback_reason}")
    if opts.certctl == "standin":
        lines.append(f"certload: {STANDIN_CAVEAT}")
    return lines
