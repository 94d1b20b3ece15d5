"""What an ACME phase did, on both sides: client-side counts from the samples, server state from SQL.

The scenarios report, never hide: failures by step, problem type and status; orders the server
left ``processing``; accounts the concurrent-orders cap now blocks; 429s by limit and whether they
said when to retry. When a phase failed, :meth:`AcmeReport.assert_ok` raises with the thresholds
breached, these figures, and the certctl defect that explains them (:mod:`.acme_defects`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pytest_certload.scenarios.acme_defects import explain
from pytest_certload.stack.model import Stack

#: certctl's CERTCTL_ACME_SERVER_RATE_LIMIT_CONCURRENT_ORDERS default (the stand-in's too)
CONCURRENT_ORDERS_CAP = 5

_STATE_SQL = """
SELECT o.status,
       count(*) AS orders,
       count(*) FILTER (WHERE o.status = 'processing' AND mc.id IS NULL) AS no_cert,
       count(*) FILTER (WHERE o.status = 'processing' AND mc.id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM certificate_versions cv WHERE cv.certificate_id = mc.id)) AS cert_no_version
FROM acme_orders o LEFT JOIN managed_certificates mc ON mc.name = 'acme-' || o.order_id
WHERE o.account_id = ANY(%(ids)s)
GROUP BY o.status"""
_BLOCKED_SQL = """
SELECT count(*) FROM (SELECT account_id FROM acme_orders
  WHERE account_id = ANY(%(ids)s) AND status IN ('pending', 'ready', 'processing')
  GROUP BY account_id HAVING count(*) >= %(cap)s) blocked"""


@dataclass
class ServerState:
    """certctl's tables for the accounts a phase used (None fields: not asked)."""

    orders: dict[str, int]
    processing_without_certificate: int
    processing_without_version: int
    blocked_accounts: int
    accounts: int
    enabled_issuers: int

    def describe(self) -> str:
        orders = ", ".join(f"{n} {s}" for s, n in sorted(self.orders.items())) or "none"
        return (
            f"orders of this phase's {self.accounts} accounts: {orders}; left processing without a "
            f"certificate row: {self.processing_without_certificate}, with a certificate but no version: "
            f"{self.processing_without_version}; accounts blocked by the concurrent-orders cap "
            f"({CONCURRENT_ORDERS_CAP}): {self.blocked_accounts}; enabled issuers: {self.enabled_issuers}"
        )


def server_state(stack: Stack, account_ids: list[str]) -> ServerState | None:
    """Read the orders of ``account_ids`` back (None without a DSN: an external stack)."""
    if stack.dsn is None or not account_ids:
        return None
    from pytest_certload.stack.secret import connect_pg

    orders: dict[str, int] = {}
    no_cert = no_version = 0
    with connect_pg(stack.dsn, connect_timeout=10) as conn:
        for status, n, a, b in conn.execute(_STATE_SQL, {"ids": account_ids}).fetchall():
            orders[status] = n
            no_cert += a
            no_version += b
        blocked = conn.execute(_BLOCKED_SQL, {"ids": account_ids, "cap": CONCURRENT_ORDERS_CAP}).fetchone()[0]
        issuers = conn.execute("SELECT count(*) FROM issuers WHERE enabled").fetchone()[0]
    return ServerState(orders, no_cert, no_version, blocked, len(set(account_ids)), issuers)


def _tagged(samples: Any, name: str) -> Counter:
    out: Counter = Counter()
    for (metric, tags), value in samples.counters.items():
        if metric == name and value:
            out[tuple(sorted((k, v) for k, v in tags if k != "scenario"))] += value
    return out


def _rate_hits(samples: Any, name: str) -> Counter:
    out: Counter = Counter()
    for (metric, tags), (trues, _total) in samples.rates.items():
        if metric == name and trues:
            out[tuple(sorted((k, v) for k, v in tags if k != "scenario"))] += trues
    return out


def _fmt(counter: Counter) -> str:
    return "; ".join(
        f"{int(n)} x " + ",".join(f"{k}={v}" for k, v in key) for key, n in counter.most_common()
    )


@dataclass
class AcmeReport:
    """One phase's ACME outcome; ``summary()`` is what the test records as a user property."""

    errors: Counter
    rate_limited: Counter
    invalid: Counter
    ari_failures: Counter
    issued: float
    renewed: float
    accepted: float
    bad_nonce: float
    errors_without_nonce: float
    trust: str
    state: ServerState | None
    steps: dict[str, tuple[int, float]] = field(default_factory=dict)  # step -> (answers, p95 ms)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Any, scenario: Any) -> AcmeReport:
        state = server_state(scenario.setup.stack, scenario.account_ids)
        return cls(
            errors=_tagged(samples, "acme_errors"),
            rate_limited=_tagged(samples, "acme_rate_limited"),
            invalid=_rate_hits(samples, "acme_cert_invalid"),
            ari_failures=_ari_misses(samples),
            issued=samples.select_counter("acme_certs_issued"),
            renewed=samples.select_counter("acme_certs_renewed"),
            accepted=samples.select_counter("acme_orders_accepted"),
            bad_nonce=samples.select_counter("acme_bad_nonce"),
            errors_without_nonce=samples.select_counter("acme_error_without_nonce"),
            trust=scenario.setup.trust.source,
            state=state,
            steps=_step_latency(samples),
        )

    def defects(self) -> list[str]:
        """The certctl defects this phase's figures point at (most explanatory first)."""
        found: list[str] = []
        finalize_500 = sum(
            n for k, n in self.errors.items() if ("step", "finalize") in k and ("status", "500") in k
        )
        st = self.state
        if (st is not None and st.processing_without_certificate) or (finalize_500 and st is None):
            found.append("finalize-empty-fks")
        if st is not None and st.processing_without_version:
            found.append("finalize-empty-fingerprint")
        if st is not None and st.blocked_accounts:
            found.append("stuck-orders-block-account")
        if any(("reason", "serial_leading_zero") in k for k in self.ari_failures):
            found.append("ari-serial-leading-zero")
        if any(("limit", "hourly") in k and ("retry_after", "no") in k for k in self.rate_limited):
            found.append("no-retry-after-on-429")
        if st is not None and st.enabled_issuers > 1 and (self.invalid or self.ari_failures):
            found.append("issuer-from-go-map")
        if self.errors_without_nonce and found:
            found.append("no-nonce-on-errors")
        return found

    def summary(self) -> str:
        parts = [
            f"certificates issued {int(self.issued)}"
            + (f", renewed {int(self.renewed)}" if self.renewed else ""),
            f"trust anchor: {self.trust}",
            f"badNonce retried: {int(self.bad_nonce)}",
            f"failures by step/type/status: {_fmt(self.errors) or 'none'}",
        ]
        if self.accepted:
            parts.append(f"orders accepted {int(self.accepted)}")
        if self.rate_limited:
            parts.append(f"429s: {_fmt(self.rate_limited)}")
        if self.invalid:
            parts.append(f"invalid certificates: {_fmt(self.invalid)}")
        if self.ari_failures:
            parts.append(f"renewal-info failures: {_fmt(self.ari_failures)}")
        if self.errors_without_nonce:
            parts.append(f"error responses without Replay-Nonce: {int(self.errors_without_nonce)}")
        if self.steps:
            answers = ", ".join(f"{s} {p95:.1f} ms ({n})" for s, (n, p95) in self.steps.items())
            parts.append(f"http_req_duration p95 by step, every answer counted (answers): {answers}")
        parts.append(self.state.describe() if self.state else "server state: not readable (no DSN)")
        return "\n".join(parts + self.notes)

    def failure(self, headline: str) -> str:
        """Defects named first (the line pytest's short summary shows), then the evidence."""
        defects = self.defects()
        if not defects:
            return f"no known certctl defect explains this\n{headline}\n{self.summary()}"
        return f"certctl defect: {', '.join(defects)}\n{headline}\n{self.summary()}\n{explain(*defects)}"

    def assert_ok(self, result: Any) -> None:
        """Thresholds held and nothing points at a defect; else AssertionError naming the defects."""
        defects = self.defects()
        if result.ok and not defects:
            return
        headline = result.breach_message() if not result.ok else "thresholds held, but:"
        raise AssertionError(self.failure(headline))


STEPS = (
    "new_nonce",
    "new_account",
    "new_order",
    "authz",
    "finalize",
    "order_poll",
    "cert_download",
    "renewal_info",
)


def _step_latency(samples: Any) -> dict[str, tuple[int, float]]:
    out = {}
    for step in STEPS:
        stats = samples.trend_stats("http_req_duration", {"step": step})
        if stats.get("count"):
            out[step] = (int(stats["count"]), stats["p(95)"])
    return out


def _ari_misses(samples: Any) -> Counter:
    out: Counter = Counter()
    for (metric, tags), (trues, total) in samples.rates.items():
        if metric == "acme_ari_ok" and total - trues:
            out[tuple(sorted((k, v) for k, v in tags if k != "scenario"))] += total - trues
    return out
