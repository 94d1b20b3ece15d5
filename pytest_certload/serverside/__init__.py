"""Server-side truth for every phase: what certctl, PostgreSQL and the machine did during the load.

One module per idea: :mod:`.process` (certctl's and PostgreSQL's processes or containers),
:mod:`.postgres` (the database's statistics views), :mod:`.metrics` (certctl's Prometheus endpoint),
:mod:`.machine` (/proc/stat, CPU pressure), :mod:`.sampler` (the background thread and the phase's raw
block), :mod:`.derived` (figures per request, usable in thresholds) and :mod:`.summary` (the block as
the reports show it, the bottleneck line).
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["attach_block", "sample_phase"]


def sample_phase(stack: Any | None, share: Any | None) -> Any | None:
    """A started sampler for this phase, or None: no stack, or a pytest-xdist share other than the
    first (the server is sampled once per phase; the merged phase divides that one block)."""
    if stack is None or (share is not None and share.index != 0):
        return None
    from pytest_certload.serverside.sampler import ServerSampler  # psutil, docker: only when sampling

    try:
        return ServerSampler(stack).start()
    except Exception as exc:  # the phase runs regardless; its block then says why it is missing
        warnings.warn(f"server-side sampling could not start: {type(exc).__name__}: {exc}", stacklevel=2)
        return None


def attach_block(sampler: Any | None, samples: Any | None) -> None:
    """Stop ``sampler`` and put its block into ``samples.meta`` (nothing when either is None)."""
    if sampler is None:
        return
    try:
        block = sampler.stop()
    except Exception as exc:  # never replace the phase's own outcome (or an interruption)
        warnings.warn(f"server-side sampling failed: {type(exc).__name__}: {exc}", stacklevel=2)
        return
    if samples is not None:
        from pytest_certload.serverside.derived import META_KEY

        samples.meta[META_KEY] = block
