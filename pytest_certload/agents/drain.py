"""A renewal drain watched from the agents' side: which renewals were issued, deployed and served.

A certificate counts as renewed when its agent reported the deployment job ``Completed`` (certctl
answered 200) and, for a sidecar-bound certificate, the sidecar served the new leaf. Times run from
the bulk-renew request's send to that report (``drain_time_to_renewed``), and to the accepted CSR
(``drain_time_to_issued``). When every certificate is renewed, ``done`` is set.
"""

from __future__ import annotations

import asyncio
from time import monotonic_ns


class DrainWatch:
    def __init__(
        self, certificate_ids: list[str], sidecar_bound: set[str] | frozenset[str] = frozenset()
    ) -> None:
        if not certificate_ids:
            raise ValueError("a drain needs at least one certificate id")
        self.expected = frozenset(certificate_ids)
        self.sidecar_bound = frozenset(sidecar_bound) & self.expected
        self.requested_ns: int | None = None
        self.issued: dict[str, int] = {}  # certificate id -> ns after the request
        self.renewed: dict[str, int] = {}
        self.not_served: set[str] = set()  # sidecar-bound, deployed, but the new leaf was not served
        self.done = asyncio.Event()

    def requested(self, at_ns: int | None = None) -> None:
        self.requested_ns = monotonic_ns() if at_ns is None else at_ns

    def csr_accepted(self, ctx, certificate_id: str) -> None:
        if self.requested_ns is None or certificate_id not in self.expected or certificate_id in self.issued:
            return
        took = self.issued[certificate_id] = monotonic_ns() - self.requested_ns
        ctx.trend("drain_time_to_issued", took)

    def deployed(self, ctx, certificate_id: str, served: bool | None) -> None:
        if self.requested_ns is None or certificate_id not in self.expected or certificate_id in self.renewed:
            return
        if certificate_id in self.sidecar_bound and not served:
            self.not_served.add(certificate_id)
            return
        self.not_served.discard(certificate_id)
        took = self.renewed[certificate_id] = monotonic_ns() - self.requested_ns
        ctx.trend("drain_time_to_renewed", took)
        ctx.counter("drain_renewed")
        if len(self.renewed) == len(self.expected):
            self.done.set()

    @property
    def left(self) -> int:
        return len(self.expected) - len(self.renewed)

    def throughput(self) -> float:
        """Certificates renewed per second, from the request to the last renewal (0 when none)."""
        if not self.renewed:
            return 0.0
        last = max(self.renewed.values())
        return len(self.renewed) / (last / 1e9) if last > 0 else 0.0

    def to_meta(self) -> dict:
        return {
            "requested": len(self.expected),
            "sidecar_bound": len(self.sidecar_bound),
            "issued": len(self.issued),
            "renewed": len(self.renewed),
            "not_served": sorted(self.not_served)[:20],
            "certificates_per_s": self.throughput(),
        }
