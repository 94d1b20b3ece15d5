"""PostgreSQL's side of a phase: what the database did, read from its statistics views.

Three kinds of figures, each exact where PostgreSQL makes it so:

- ``pg_stat_statements`` (enabled in the stacks we start): calls, execution time and rows per
  normalised statement, updated as each statement ends -- the source of queries per request and the
  top statements. Transaction control (BEGIN/COMMIT/...) is counted apart from queries.
- the transaction-id counter: every transaction that writes takes one id as it happens, so its
  advance is the number of write transactions (read-only ones take none) -- commits per request.
- ``pg_stat_database`` (commits, rollbacks, tuples, blocks, temp files, deadlocks): kept too, but
  backends flush these counters at most once a second and, once idle, only after 10 s, so the last
  second of a phase may be missing from them (the block says so).

Lock waits are sampled (``pg_stat_activity`` wait events, ``pg_locks`` not granted) by the sampler's
thread. Every statement sent from here carries :data:`MARK` and is left out of the statement figures;
the transactions it ran are subtracted from ``xact_commit``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pytest_certload.stack.secret import Secret, connect_pg

MARK = "/* certload-serverside */"
TOP_STATEMENTS = 10
QUERY_TEXT_CHARS = 240
DATABASE_COLUMNS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_read",
    "blks_hit",
    "temp_files",
    "temp_bytes",
    "deadlocks",
)
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b", re.I
)
_WRITES = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(INSERT|UPDATE|DELETE|MERGE|COPY)\b", re.I | re.S)


class PgProbe:
    """One monitoring connection to the stack's database (the DSN's); autocommit, marked statements."""

    def __init__(self, dsn: Secret) -> None:
        self._conn = connect_pg(dsn, autocommit=True, connect_timeout=5)
        self.own_transactions = 0  # statements (each its own transaction) sent so far
        row = self._run("SELECT oid, datname FROM pg_database WHERE datname = current_database()")
        self.dbid, self.dbname = row[0]
        self.statements_available = self._has_statements()

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        self.own_transactions += 1
        return self._conn.execute(f"{MARK} {sql}", params).fetchall()

    def _has_statements(self) -> bool:
        try:
            return bool(self._run("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"))
        except Exception:
            return False

    def counters(self) -> dict[str, int]:
        """pg_stat_database's row for this database, the next transaction id and the WAL position."""
        cols = ", ".join(f"d.{c}" for c in DATABASE_COLUMNS)
        row = self._run(
            f"SELECT {cols}, pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint "
            "FROM pg_stat_database d WHERE d.datid = %s",
            (self.dbid,),
        )[0]
        values = dict(zip((*DATABASE_COLUMNS, "next_xid", "wal_bytes"), row, strict=True))
        return {k: int(v or 0) for k, v in values.items()}

    def statements(self) -> dict[str, list] | None:
        """``queryid/userid/toplevel`` -> [calls, total_exec_time ms, rows, query], ours left out."""
        if not self.statements_available:
            return None
        rows = self._run(
            "SELECT userid::text || ':' || queryid::text || ':' || toplevel::text, calls, "
            "total_exec_time, rows, query FROM pg_stat_statements "
            "WHERE dbid = %s AND query NOT LIKE %s",
            (self.dbid, f"%{MARK}%"),
        )
        return {key: [int(calls), float(ms), int(n), text] for key, calls, ms, n, text in rows}

    def activity(self) -> dict[str, Any]:
        """This database's backends now: how many, how many waiting on a lock, locks not granted."""
        rows = self._run(
            "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
            "WHERE datid = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            (self.dbid,),
        )
        not_granted = self._run("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]
        events = Counter(f"{t}:{e}" for _, t, e in rows if t and t != "Client" and t != "Activity")
        return {
            "backends": len(rows),
            "active": sum(1 for s, _, _ in rows if s == "active"),
            "lock_waiting": sum(1 for _, t, _ in rows if t == "Lock"),
            "locks_not_granted": int(not_granted),
            "wait_events": dict(events),
        }

    def close(self) -> None:
        self._conn.close()


def counters_delta(before: dict[str, int], after: dict[str, int], own_transactions: int) -> dict[str, Any]:
    """After minus before; ``xact_commit`` without the monitoring connection's own transactions."""
    delta = {k: after[k] - before[k] for k in before}
    delta["xact_commit"] = max(0, delta["xact_commit"] - own_transactions)
    delta["write_transactions"] = delta.pop("next_xid")
    return delta


def statements_delta(before: dict[str, list], after: dict[str, list]) -> dict[str, Any]:
    """Per statement over the phase, the totals, and the top :data:`TOP_STATEMENTS` by time."""
    per: list[dict[str, Any]] = []
    for key, (calls, ms, rows, text) in after.items():
        b_calls, b_ms, b_rows, _ = before.get(key, (0, 0.0, 0, text))
        if calls - b_calls <= 0:  # not called in the phase (or evicted and re-entered: no honest delta)
            continue
        per.append(
            {
                "query": shown_text(text),
                "calls": calls - b_calls,
                "exec_ms": max(0.0, ms - b_ms),
                "rows": max(0, rows - b_rows),
                "kind": statement_kind(text),
            }
        )
    queries = [s for s in per if s["kind"] != "transaction"]
    return {
        "calls": sum(s["calls"] for s in queries),
        "exec_ms": sum(s["exec_ms"] for s in queries),
        "transaction_control_calls": sum(s["calls"] for s in per if s["kind"] == "transaction"),
        "rows_written": sum(s["rows"] for s in queries if s["kind"] == "write"),
        "distinct": len(queries),
        "top": sorted(queries, key=lambda s: s["exec_ms"], reverse=True)[:TOP_STATEMENTS],
    }


_LITERAL = re.compile(r"'(?:[^']|'')*'")


def shown_text(text: str) -> str:
    """A statement as reports show it: one line, shortened, string literals blanked (pg_stat_statements
    keeps utility statements verbatim, and one could carry a password)."""
    return " ".join(_LITERAL.sub("'…'", text).split())[:QUERY_TEXT_CHARS]


def statement_kind(text: str) -> str:
    """'transaction' (BEGIN/COMMIT/...), 'write' (INSERT/UPDATE/DELETE/...), else 'read'."""
    if _TRANSACTION_CONTROL.match(text):
        return "transaction"
    return "write" if _WRITES.match(text) else "read"
