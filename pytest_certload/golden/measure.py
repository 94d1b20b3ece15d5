"""What one request cost the database, read from PostgreSQL's own counters.

Why these sources: ``pg_stat_statements`` is updated as each statement ends, so the statements of
one request are visible the moment it (and certctl's asynchronous audit insert) is done.
``pg_stat_database`` is not: a backend publishes its commit and tuple counters at most once a
second and otherwise up to 10 s later, so per-request deltas from it are wrong. Commits, rows
written and row locks are therefore counted in the WAL (``pg_walinspect``), which is exact and
immediate once flushed: a write transaction's COMMIT record, one heap record per row inserted,
updated, deleted or locked ``FOR UPDATE`` (including the rows the audit trigger writes).
Read-only transactions write no WAL, so "commits" here are write commits.

The probe's own statements carry :data:`MARK` and are left out of every count.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import psycopg

MARK = "/* certload-golden */"
SETTLE_POLL_S = 0.025  # how often settle() looks at the statement counters
SETTLE_QUIET_POLLS = 3  # unchanged this many polls in a row: the request's work is done
SETTLE_DEADLINE_S = 3.0
FLUSH_DEADLINE_S = 5.0
ROW_WRITES = frozenset({"INSERT", "INSERT+INIT", "MULTI_INSERT", "MULTI_INSERT+INIT", "UPDATE", "HOT_UPDATE",
                        "UPDATE+INIT", "HOT_UPDATE+INIT", "DELETE"})  # fmt: skip


@dataclass
class RequestCost:
    """The database work of one request."""

    queries: int  # top-level statements executed (pg_stat_statements calls), BEGIN/COMMIT included
    write_commits: int  # COMMIT records of transactions that wrote to this database
    rows_written: int  # heap rows inserted, updated or deleted (trigger writes included)
    row_locks: int  # heap rows locked (SELECT ... FOR UPDATE)
    audit_rows: int  # rows added to audit_events
    statements: dict[str, int] = field(default_factory=dict)  # statement_kind -> calls

    def figures(self) -> dict[str, int]:
        return {
            "queries": self.queries,
            "write_commits": self.write_commits,
            "rows_written": self.rows_written,
            "row_locks": self.row_locks,
            "audit_rows": self.audit_rows,
        }


_TABLE_AFTER = re.compile(r"(?<!distinct )\b(?:from|into|update|join)\s+([a-z_][a-z0-9_.]*)", re.IGNORECASE)


def statement_kind(text: str) -> str:
    """A statement as its verb and the first table it names (``SELECT managed_certificates``).

    Enough to see which statements differ between two servers, without keeping anyone's SQL text.
    """
    words = text.split()
    verb = words[0].upper() if words else "?"
    if verb == "WITH":
        verb = next((w.upper() for w in words if w.upper() in ("SELECT", "INSERT", "UPDATE", "DELETE")), verb)
    table = _TABLE_AFTER.search(text)
    return f"{verb} {table.group(1).lower()}" if table else verb


@dataclass(frozen=True)
class Snapshot:
    calls: dict[int, tuple[int, str]]  # queryid -> (calls, text)
    lsn: str
    audit_rows: int


class DbProbe:
    """Counters of one database, read before and after each request (see the module docstring)."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        try:
            for ext in ("pg_stat_statements", "pg_walinspect"):
                self.conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
            self.conn.execute(f"SELECT {MARK} count(*) FROM pg_stat_statements").fetchone()
        except psycopg.Error as exc:
            self.conn.close()
            raise RuntimeError(
                "the golden profile needs pg_stat_statements (shared_preload_libraries) and pg_walinspect"
                f" in the server's PostgreSQL: {type(exc).__name__}: {exc}".strip()
            ) from exc
        track = self.conn.execute(f"SELECT {MARK} current_setting('pg_stat_statements.track')").fetchone()[0]
        if track != "top":  # nested statements (the audit trigger's) would count as the server's own
            self.conn.close()
            raise RuntimeError(f"pg_stat_statements.track is {track!r}; the golden profiles count 'top' only")
        row = self.conn.execute(f"SELECT {MARK} oid FROM pg_database WHERE datname = current_database()")
        self.dboid: int = row.fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def _calls(self) -> dict[int, tuple[int, str]]:
        rows = self.conn.execute(
            f"SELECT {MARK} queryid, calls, query FROM pg_stat_statements"
            " WHERE dbid = %s AND query NOT LIKE %s",
            (self.dboid, f"%{MARK}%"),
        ).fetchall()
        return {qid: (calls, text) for qid, calls, text in rows}

    def _audit_rows(self) -> int:
        row = self.conn.execute(
            f"SELECT {MARK} CASE WHEN to_regclass('audit_events') IS NULL THEN 0"
            " ELSE (SELECT count(*) FROM audit_events) END"
        ).fetchone()
        return int(row[0])

    def snapshot(self) -> Snapshot:
        lsn = self.conn.execute(f"SELECT {MARK} pg_current_wal_insert_lsn()::text").fetchone()[0]
        return Snapshot(self._calls(), lsn, self._audit_rows())

    def settle(self) -> None:
        """Wait until no statement of the server's runs any more (certctl audits after answering)."""
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        last, quiet = None, 0
        while time.monotonic() < deadline:
            total = sum(calls for calls, _ in self._calls().values())
            quiet = quiet + 1 if total == last else 0
            if quiet >= SETTLE_QUIET_POLLS:
                return
            last = total
            time.sleep(SETTLE_POLL_S)  # polling interval of a bounded wait on the counters

    def cost(self, before: Snapshot, after: Snapshot) -> RequestCost:
        """The statements, WAL records and audit rows between two snapshots."""
        statements: dict[str, int] = {}
        for qid, (calls, text) in after.calls.items():
            delta = calls - before.calls.get(qid, (0, ""))[0]
            if delta > 0:
                key = statement_kind(text)
                statements[key] = statements.get(key, 0) + delta
        commits, rows, locks = self.wal_records(before.lsn, after.lsn)
        return RequestCost(
            queries=sum(statements.values()),
            write_commits=commits,
            rows_written=rows,
            row_locks=locks,
            audit_rows=after.audit_rows - before.audit_rows,
            statements=statements,
        )

    def wal_records(self, start: str, end: str) -> tuple[int, int, int]:
        """(write commits, rows written, rows locked) of this database between two WAL positions."""
        if start == end:
            return 0, 0, 0
        deadline = time.monotonic() + FLUSH_DEADLINE_S
        flushed = f"SELECT {MARK} pg_current_wal_flush_lsn() >= %s::pg_lsn"
        while not self.conn.execute(flushed, (end,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"WAL not flushed up to {end} within {FLUSH_DEADLINE_S} s")
            time.sleep(SETTLE_POLL_S)  # the WAL writer flushes every wal_writer_delay (200 ms)
        records = self.conn.execute(
            f"SELECT {MARK} xid::text, resource_manager, record_type, coalesce(block_ref, '')"
            " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)",
            (start, end),
        ).fetchall()
        ours = f"/{self.dboid}/"
        our_xids: set[str] = set()
        rows = locks = 0
        for xid, manager, kind, blocks in records:
            if manager not in ("Heap", "Heap2") or ours not in blocks:
                continue
            our_xids.add(xid)
            if kind in ROW_WRITES:
                rows += 1
            elif kind.startswith("LOCK"):
                locks += 1
        commits = sum(
            1 for xid, manager, kind, _ in records if manager == "Transaction" and kind.startswith("COMMIT")
            and xid in our_xids
        )  # fmt: skip
        return commits, rows, locks
