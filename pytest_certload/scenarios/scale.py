"""Scale tier: bulk renewal over the 10K fleet and the heartbeat storm over the 5K-agent fleet."""

from __future__ import annotations

import json
import random

from pytest_certload.scenarios.common import DEMO_ISSUER, DEMO_TEAM, auth_headers, json_bytes
from pytest_certload.stack.model import Stack


def bulk_renewal(stack: Stack):
    """POST /api/v1/certificates/bulk-renew {team_id, issuer_id}.

    certctl's criteria mode touches at most the 50 oldest matches per call and flips them to
    RenewalInProgress, so after the first calls the request is mostly a read. The iteration counts
    ``bulk_renew_enqueued`` / ``bulk_renew_skipped`` from each response so the report shows what was
    actually measured.
    """
    url = f"{stack.certctl_url}/api/v1/certificates/bulk-renew"
    headers = auth_headers(stack, json_body=True)
    body = json_bytes({"team_id": DEMO_TEAM, "issuer_id": DEMO_ISSUER})

    async def iteration(ctx) -> None:
        resp = await ctx.request("POST", url, headers=headers, body=body, tags={"step": "bulk_renew"})
        if resp.status == 200:
            try:
                doc = json.loads(resp.body)
            except ValueError:
                ctx.counter("bulk_renew_bad_body")
                return
            ctx.counter("bulk_renew_matched", int(doc.get("total_matched", 0)))
            ctx.counter("bulk_renew_enqueued", int(doc.get("total_enqueued", 0)))
            ctx.counter("bulk_renew_skipped", int(doc.get("total_skipped", 0)))

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
        await ctx.request(
            "POST", f"{base}{agent_id}/heartbeat", headers=headers, body=body, tags={"step": "heartbeat"}
        )

    return iteration
