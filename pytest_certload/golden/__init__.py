"""Golden per-endpoint database profiles: what one request to each endpoint costs the database.

:mod:`.measure` reads PostgreSQL's own counters around one request (statements from
pg_stat_statements; commits, rows written and row locks from the WAL), :mod:`.shapes` reduces a
response to what must match (status, the headers that matter, the JSON body's shape),
:mod:`.endpoints` names the endpoints the scenarios call and how to call each once,
:mod:`.record` runs them K times one at a time and writes or compares the golden files
(``tests/contract/golden/``), :mod:`.server` starts a server to record against, and
``python -m pytest_certload.golden record ...`` is the command that records from a real certctl.
"""
