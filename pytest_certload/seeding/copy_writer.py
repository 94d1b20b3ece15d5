"""Seed a fleet over SQL: COPY into a staging table, one INSERT … ON CONFLICT DO NOTHING, verify.

All in one transaction, so a failed seed leaves the database as it was. Rows are streamed from
the fleet's generator straight into ``copy.write_row``; nothing holds the whole fleet, so memory
stays flat from 10k to 1M rows. ``ON CONFLICT DO NOTHING`` without a target makes seeding
idempotent against every unique constraint (certctl's ``agents`` has two: ``id`` and ``name``).
Afterwards the staging table is joined back to the target to count which of *our* ids exist.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from pytest_certload.seeding.errors import CleanupRefused, SeedVerificationError
from pytest_certload.seeding.fleet import Fleet
from pytest_certload.seeding.report import CleanupReport, SeedReport
from pytest_certload.seeding.schema_check import check_schema

STAGE = "certload_stage"
MISSING_SAMPLE = 5


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def seed_fleet(conn: psycopg.Connection, fleet: Fleet, *, now: datetime | None = None) -> SeedReport:
    """Seed ``fleet`` through ``conn``: committed on return, unless the caller has a transaction open
    on ``conn`` (then it is a savepoint inside it and the caller commits)."""
    started = time.perf_counter()
    table = sql.Identifier(fleet.table)
    stage = sql.Identifier(STAGE)
    cols = sql.SQL(", ").join(map(sql.Identifier, fleet.column_names))
    with conn.transaction(), conn.cursor() as cur:
        check_schema(conn, fleet)  # inside: an implicit transaction would turn ours into a savepoint
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                stage, cols, table
            )
        )
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
            for row in fleet.rows(now or datetime.now(UTC), for_copy=True):
                copy.write_row(row)
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                table, cols, cols, stage
            )
        )
        inserted = cur.rowcount
        cur.execute(sql.SQL("SELECT count(*) FROM {} s JOIN {} t ON t.id = s.id").format(stage, table))
        present = cur.fetchone()[0]
        if present < fleet.count:
            cur.execute(
                sql.SQL(
                    "SELECT s.id FROM {} s LEFT JOIN {} t ON t.id = s.id WHERE t.id IS NULL"
                    " ORDER BY s.id LIMIT %s"
                ).format(stage, table),
                [MISSING_SAMPLE],
            )
            sample = [r[0] for r in cur.fetchall()]
            raise SeedVerificationError(
                f"fleet {fleet.name!r}: {fleet.count - present} of {fleet.count} rows missing from table "
                f"{fleet.table!r} after seeding (e.g. {', '.join(sample)}); they most likely collide with "
                "existing rows on another unique column (such as name) under different ids: remove those "
                f"rows or change the fleet's templates in {fleet.path}. Nothing was committed."
            )
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return SeedReport(
        fleet=fleet.name,
        table=fleet.table,
        method="copy",
        expected=fleet.count,
        inserted=inserted,
        present=present,
        seconds=time.perf_counter() - started,
        ids=fleet.ids(),
    )


def cleanup_fleet(conn: psycopg.Connection, fleet: Fleet) -> CleanupReport:
    """Delete exactly this fleet's rows: its generated ids, and only those carrying its id prefix.

    Deletes cascade as certctl's schema says (a certificate's jobs and versions go with it). A
    RESTRICT reference (an agent with deployment targets, a profile with ACME orders) refuses, and
    the whole cleanup rolls back. Audit rows written while the fleet was used are never deleted:
    certctl's audit_events table is append-only (WORM trigger).
    """
    started = time.perf_counter()
    table = sql.Identifier(fleet.table)
    ids = sql.Identifier("certload_cleanup_ids")
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ids))
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (id text PRIMARY KEY) ON COMMIT DROP").format(ids))
            with cur.copy(sql.SQL("COPY {} (id) FROM STDIN").format(ids)) as copy:
                make_id = fleet.id_function()
                for i in range(fleet.first, fleet.first + fleet.count):
                    copy.write_row((make_id(i),))
            cur.execute(
                sql.SQL("DELETE FROM {} t USING {} d WHERE t.id = d.id AND t.id LIKE %s").format(table, ids),
                [_like_prefix(fleet.id_prefix)],
            )
            deleted = cur.rowcount
            cur.execute(sql.SQL("DROP TABLE {}").format(ids))
    except psycopg.errors.ForeignKeyViolation as exc:
        detail = exc.diag.message_detail or exc.diag.message_primary or str(exc)
        raise CleanupRefused(
            f"fleet {fleet.name!r}: certctl's schema refuses to delete rows of {fleet.table!r} that are "
            f"still referenced ({detail}); delete the referencing rows first or recreate the database"
        ) from None
    return CleanupReport(fleet.name, fleet.table, deleted, time.perf_counter() - started)
