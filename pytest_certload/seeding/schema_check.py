"""Check that a database can take a fleet before writing a single row.

A raw error half-way through a COPY ("null value in column … violates not-null constraint",
"insert or update … violates foreign key constraint") says little about what to fix, so the
table, its columns, the NOT NULL columns without default and the required foreign-key rows are
checked up front, and the error names the column or row and how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from pytest_certload.seeding.errors import SchemaMismatch
from pytest_certload.seeding.fleet import Fleet

COLUMNS_QUERY = """
SELECT a.attname, a.attnotnull, a.atthasdef, a.attidentity <> '' AS is_identity,
       a.attgenerated <> '' AS is_generated
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

MIGRATIONS_HINT = (
    "is the DSN pointing at a certctl database whose migrations ran? (certctl applies migrations at boot; "
    "for a hand-made database apply migrations/*.up.sql in order)"
)


@dataclass(frozen=True)
class TableColumn:
    name: str
    not_null: bool
    has_default: bool
    is_identity: bool
    is_generated: bool

    @property
    def must_be_given(self) -> bool:
        return self.not_null and not (self.has_default or self.is_identity or self.is_generated)


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, TableColumn] | None:
    """The table's columns by name, or None when the table does not exist (search_path applies)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
    if not exists or not exists[0]:
        return None
    return {row[0]: TableColumn(*row) for row in conn.execute(COLUMNS_QUERY, [table]).fetchall()}


def check_schema(conn: psycopg.Connection, fleet: Fleet) -> None:
    """Raise :class:`SchemaMismatch` naming the first problem; return quietly when seeding can go ahead."""
    columns = table_columns(conn, fleet.table)
    where = f"fleet {fleet.name!r} ({fleet.path.name})"
    if columns is None:
        raise SchemaMismatch(
            f"{where}: table {fleet.table!r} does not exist in this database; {MIGRATIONS_HINT}"
        )
    missing = [c for c in fleet.column_names if c not in columns]
    if missing:
        raise SchemaMismatch(
            f"{where}: column {fleet.table}.{missing[0]} does not exist"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
            + "; the schema is older or newer than the fleet expects: fix the fleet file or "
            + MIGRATIONS_HINT
        )
    uncovered = [c.name for c in columns.values() if c.must_be_given and c.name not in fleet.column_names]
    if uncovered:
        raise SchemaMismatch(
            f"{where}: column {fleet.table}.{uncovered[0]} is NOT NULL without a default and the fleet "
            f"does not generate it; add '{uncovered[0]} = …' under [columns] in {fleet.path}"
        )
    for req in fleet.requires:
        if table_columns(conn, req.table) is None:
            raise SchemaMismatch(
                f"{where}: needs table {req.table!r}, which does not exist; {MIGRATIONS_HINT}"
            )
        found = conn.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(req.table)), [req.id]
        ).fetchone()
        if found is None:
            raise SchemaMismatch(
                f"{where}: needs row {req.table}.id = {req.id!r}, which does not exist"
                + (f" ({req.hint})" if req.hint else "")
            )
