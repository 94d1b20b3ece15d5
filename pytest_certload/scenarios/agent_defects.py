"""certctl's known defects on the agent work loop, cited once, named in the agent scenarios' failures.

Read in certctl's source at commit ``151107c`` (paths relative to its repository; facts sheet
``certctl-agent-acme-facts.md`` §0) and confirmed against a server built from it where a bounded
test can show them: ``tests/contract/test_agent_work.py`` pins each entry of :data:`PINNED`
against the real server, so a certctl that fixes one fails its pin and the entry can go. The
drain scenario names the defect that explains jobs it found stuck (:func:`explain`).
"""

from __future__ import annotations

from pytest_certload.scenarios.defects import Defect, catalogue

DEFECTS: dict[str, Defect] = catalogue(
    Defect(
        "processor-claims-agent-deployments",
        "the scheduler's job processor claims agent-bound Deployment jobs and flips them to Running",
        "internal/repository/postgres/job.go:306-368 (claims every Pending job of any type), "
        "internal/service/job.go:245-251, 297-299 (skips agent-bound deployments only in memory)",
        "a Deployment job the processor reaches first (30 s tick, also once at boot) is Running "
        "before the agent polls; the agent never receives it and it stays Running until the "
        "offline-agent reaper (5 min without heartbeat) fails it",
    ),
    Defect(
        "attempts-never-incremented",
        "no code path increments jobs.attempts",
        "internal/service/job.go:368-419 (retry loop resets Failed to Pending without counting); "
        "internal/repository/postgres/job.go:219-243 (status updates leave attempts alone)",
        "max_attempts never stops a retry: a Failed job goes back to Pending every retry tick forever",
    ),
    Defect(
        "awaiting-csr-redelivered",
        "every work poll re-delivers every AwaitingCSR job of the agent, with no LIMIT",
        "internal/repository/postgres/job.go:537-554 (locks only for the poll's transaction), "
        "483-490, 510-519 (no LIMIT on any branch)",
        "an agent that cannot complete a CSR gets the same job on every poll until the 24 h "
        "AwaitingCSR timeout; each poll costs O(all AwaitingCSR jobs in the table)",
    ),
    Defect(
        "key-path-redacted",
        "API-created targets reach agents with key_path (any key naming a secret) as ********",
        "internal/service/target.go:151-158, internal/service/config_helpers.go:12-45, "
        "internal/service/agent.go:482-488 (work items carry the redacted config column)",
        "an agent deploying to an API-created NGINX/Apache target writes its key to a file "
        "named ******** (the seeds create targets in SQL for this reason)",
    ),
    Defect(
        "offline-heartbeat-stale",
        "a heartbeat from an agent that is not Online writes back the pre-heartbeat snapshot",
        "internal/service/agent.go:106-133, internal/repository/postgres/agent.go:151-165",
        "last_heartbeat_at (and the metadata the heartbeat sent) return to their old values, so the "
        "health sweep marks the agent Offline again: agents flap until two heartbeats land between "
        "sweeps",
    ),
    Defect(
        "verification-not-stored",
        "POST /api/v1/jobs/{id}/verify answers 200 but never stores the agent's TLS probe result",
        "internal/service/verification.go:62-77 sets the job's verification fields, then calls "
        "JobRepository.Update, whose UPDATE (internal/repository/postgres/job.go:101-118) has no "
        "verification column",
        "jobs.verification_status stays 'pending' and verified_at / verification_fingerprint NULL "
        "after every report: the served-certificate check exists only in the audit trail",
    ),
    Defect(
        "csr-completion-not-atomic",
        "certctl completes an agent's CSR in separate statements, no transaction",
        "internal/service/renewal.go:702-801: job Running (726), sign, CreateVersion (779), "
        "certificate Update (790), job Completed (796), createDeploymentJobs (801)",
        "a crash in between leaves the Renewal job Running (only AwaitingCSR jobs are offered again, "
        "job.go:537-554; the processor claims only Pending) or Completed without its Deployment jobs: "
        "the certificate is never renewed, or renewed but never deployed",
    ),
)

# Shown by a bounded contract test against the real server (test_agent_work.py: test_defect_<key>).
PINNED = frozenset(
    {
        "processor-claims-agent-deployments",
        "awaiting-csr-redelivered",
        "key-path-redacted",
        "offline-heartbeat-stale",
        "verification-not-stored",
    }
)
# Read in the code only: showing it needs the 5-minute retry tick, which a contract test cannot wait for.
READ_ONLY = {
    "attempts-never-incremented": "needs certctl's 5 min job-retry tick",
    "csr-completion-not-atomic": "needs a crash inside a CSR: shown by tests/faults/test_fleet_faults.py",
}

# Job states a drain can be left in, and the defect that explains each (by job type).
STUCK_EXPLAINED = {
    ("Deployment", "Running"): "processor-claims-agent-deployments",
    ("Renewal", "AwaitingCSR"): "awaiting-csr-redelivered",
    ("Issuance", "AwaitingCSR"): "awaiting-csr-redelivered",
}


def explain(job_type: str, status: str) -> str | None:
    """The defect line that explains jobs left in ``status`` after a drain, or None."""
    key = STUCK_EXPLAINED.get((job_type, status))
    return DEFECTS[key].line() if key else None
