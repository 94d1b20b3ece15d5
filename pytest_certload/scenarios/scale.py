"""Scale tier: bulk renewal over the 10K fleet and the heartbeat storm over the 5K-agent fleet."""

from __future__ import annotations

import json
import random
from typing import Any

from pytest_certload.scenarios.common import DEMO_ISSUER, DEMO_TEAM, auth_headers, json_bytes
from pytest_certload.stack.model import Stack

#: the seeded 10K fleet (seeds/bulk_renewal.toml); its rows are created a year back, so they are
#: the oldest t-platform + iss-local certificates and certctl's criteria walk (oldest first) reaches
#: them before anything a scenario POSTs
BULK_FLEET_PREFIX = "cert-loadtest-bulk-"


def bulk_renewal(stack: Stack, fleet_prefix: str = BULK_FLEET_PREFIX):
    """POST /api/v1/certificates/bulk-renew {team_id, issuer_id} (bulk_renewal.js's criteria).

    certctl's criteria mode resolves the 50 oldest matches per call (whatever their status), flips
    the renewable ones to RenewalInProgress and enqueues a job each. The 50 oldest are the same
    rows on every call, and in certctl's default agent keygen mode their jobs wait for an agent's
    CSR, so the first call enqueues 50 and every later one matches the same 50 and skips them: after
    the first call the scenario measures the criteria walk, a read. The response's counts are
    recorded per phase (``bulk_renew_matched`` / ``_enqueued`` / ``_skipped`` / ``_failed``) and per
    call (``bulk_renew_calls{matched:M,enqueued:E}``, one series per distinct answer), and every
    renewal enqueued for a certificate outside the seeded fleet is counted as ``bulk_renew_foreign``.
    """
    url = f"{stack.certctl_url}/api/v1/certificates/bulk-renew"
    headers = auth_headers(stack, json_body=True)
    body = json_bytes({"team_id": DEMO_TEAM, "issuer_id": DEMO_ISSUER})

    async def iteration(ctx) -> None:
        resp = await ctx.request("POST", url, headers=headers, body=body, tags={"step": "bulk_renew"})
        ctx.check("bulk-renew 2xx", 200 <= resp.status < 300)
        if resp.status != 200:
            return
        try:
            doc = json.loads(resp.body)
            counts = {k: int(doc.get(f"total_{k}", 0)) for k in ("matched", "enqueued", "skipped", "failed")}
            renewed = [str(job.get("certificate_id", "")) for job in doc.get("enqueued_jobs") or ()]
        except (ValueError, TypeError, AttributeError):
            ctx.counter("bulk_renew_bad_body")
            return
        for key, n in counts.items():
            ctx.counter(f"bulk_renew_{key}", n)
        ctx.counter(
            "bulk_renew_calls", tags={"matched": str(counts["matched"]), "enqueued": str(counts["enqueued"])}
        )
        foreign = sum(not cert_id.startswith(fleet_prefix) for cert_id in renewed)
        if foreign:
            ctx.counter("bulk_renew_foreign", foreign)

    return iteration


class UniformAgentPicker:
    """Agent ids in a shuffled cycle: every agent is hit equally often, in no fixed order.

    The original's ``(VU*1000+ITER) % fleet`` moves VUs in lockstep, so VUs congruent mod 5 hit the
    same ids together. A per-process shuffled permutation gives exact uniform coverage per cycle.
    """

    def __init__(self, agent_ids: list[str], seed: int | None = None) -> None:
        if not agent_ids:
            raise ValueError("agent fleet is empty: seed the agent_fleet before the heartbeat storm")
        self._ids = list(agent_ids)
        self._rng = random.Random(seed)
        self._rng.shuffle(self._ids)
        self._next = 0

    def __call__(self) -> str:
        if self._next == len(self._ids):
            self._rng.shuffle(self._ids)
            self._next = 0
        agent_id = self._ids[self._next]
        self._next += 1
        return agent_id


def agent_storm(stack: Stack, agent_ids: list[str], seed: int | None = None):
    """POST /api/v1/agents/{id}/heartbeat with the real agent's body, ids spread uniformly."""
    pick = UniformAgentPicker(agent_ids, seed)
    headers = auth_headers(stack, json_body=True)
    base = f"{stack.certctl_url}/api/v1/agents/"

    async def iteration(ctx) -> None:
        agent_id = pick()
        body = json_bytes(
            {
                "version": "2.1.0",
                "hostname": f"loadtest-{agent_id[-5:]}.fleet.example.test",
                "os": "linux",
                "architecture": "amd64",
            }
        )
        resp = await ctx.request(
            "POST", f"{base}{agent_id}/heartbeat", headers=headers, body=body, tags={"step": "heartbeat"}
        )
        ctx.check("heartbeat 2xx", 200 <= resp.status < 300)

    return iteration


def bulk_calls(samples: Any, scenario: str = "bulk_renewal") -> dict[tuple[int, int], float]:
    """Calls per distinct (matched, enqueued) answer of the bulk-renew endpoint, e.g. {(50, 50): 15}."""
    calls: dict[tuple[int, int], float] = {}
    for (name, tags), n in samples.counters.items():
        tag = dict(tags)
        if name == "bulk_renew_calls" and tag.get("scenario") == scenario:
            key = (int(tag["matched"]), int(tag["enqueued"]))
            calls[key] = calls.get(key, 0) + n
    return calls


def describe_bulk_calls(calls: dict[tuple[int, int], float]) -> str:
    """'15 calls: 12 x matched 50 / enqueued 50, 3 x matched 50 / enqueued 0'."""
    total = sum(calls.values())
    parts = [
        f"{n:g} x matched {m} / enqueued {e}" for (m, e), n in sorted(calls.items(), key=lambda kv: -kv[1])
    ]
    return f"{total:g} calls: " + (", ".join(parts) or "none answered 200")


def renewal_in_progress(stack: Stack) -> tuple[list[str], int]:
    """Ids (first 500) and count of the certificates the bulk criteria match that are RenewalInProgress.

    Read through certctl's list endpoint after a phase: what bulk renewal has flipped so far, in this
    phase or an earlier one (they stay in progress until an agent answers their jobs).
    """
    import httpx

    from pytest_certload.engine.http import make_ssl_context

    query = {"status": "RenewalInProgress", "team_id": DEMO_TEAM, "issuer_id": DEMO_ISSUER, "per_page": 500}
    resp = httpx.get(
        f"{stack.certctl_url}/api/v1/certificates",
        params=query,
        headers=auth_headers(stack),
        verify=make_ssl_context(stack.ca_bundle),
        timeout=30,
    )
    resp.raise_for_status()
    doc = resp.json()
    return [str(row.get("id", "")) for row in doc.get("data") or ()], int(doc.get("total", 0))
