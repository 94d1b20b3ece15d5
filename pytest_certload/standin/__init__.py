"""The certctl stand-in: a test double for CI machines that have no certctl binary.

It answers the handful of certctl routes the load scenarios use, with certctl's status codes,
bodies and headers, backed by the same PostgreSQL tables (:mod:`.schema`). It is *not* a certctl
replacement: no RBAC, no audit trail, no scheduler, no issuance. Every report that ran against it
says "certctl stand-in". Run it as ``python -m pytest_certload.standin`` (see :mod:`.config`).
Start reading at :mod:`.app`: its route table names the handler module of every route.
"""
