"""Simulated certctl agents: the real agent's requests, keys, CSRs and deployments, at its cadence.

model.py (identity, keys in memory), protocol.py (headers and bodies as cmd/agent sends them),
csr_job.py (key + CSR + submit), deploy_job.py (status, pickup, sidecar write/reload/verify),
fleet.py (the iteration the ``agent-fleet`` executor runs for every tick), drain.py (renewals watched
to the end), connections.py (established connections counted from both sides), sidecar_nginx.py
(an nginx of the test's own for sidecar-bound targets). When each agent acts and on which
connection is the executor's: engine/agent_timing.py and engine/executors/agent_fleet.py.
"""
