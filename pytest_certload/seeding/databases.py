"""Prepare a PostgreSQL database with a schema fleets can be seeded into.

Two schemas matter: certctl's own (its migrations, then seed.sql and seed_demo.sql, exactly what
certctl-server does at boot with CERTCTL_DEMO_SEED=true) and the stand-in's subset
(:mod:`pytest_certload.standin.schema`). Tests and the seeding benchmark use both; creating a
database from a prepared template costs ~0.1 s, so each test can start from a clean copy.

DSNs are :class:`~pytest_certload.stack.secret.DsnSecret` throughout; only
:meth:`SchemaTemplates.fresh` hands out a plain string, because its databases are throw-away
copies on a throw-away server that tests and benchmarks pass to psycopg directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from pytest_certload.stack.secret import DsnSecret, Secret, connect_pg

MIGRATIONS_ENV = "CERTLOAD_CERTCTL_MIGRATIONS"
SCHEMA_VARIANTS = ("standin", "certctl")


def certctl_migrations_dir() -> Path | None:
    """$CERTLOAD_CERTCTL_MIGRATIONS if it names a directory of *.up.sql files, else None."""
    value = os.environ.get(MIGRATIONS_ENV)
    if not value:
        return None
    path = Path(value)
    if not path.is_dir() or not any(path.glob("*.up.sql")):
        raise FileNotFoundError(f"{MIGRATIONS_ENV}={value} is not a directory of certctl *.up.sql migrations")
    return path


def apply_certctl_migrations(conn: psycopg.Connection, migrations: Path) -> None:
    """Every *.up.sql in lexical order, then seed.sql and seed_demo.sql (as certctl-server does)."""
    files = [*sorted(migrations.glob("*.up.sql")), migrations / "seed.sql", migrations / "seed_demo.sql"]
    for path in files:
        if path.exists():
            conn.execute(path.read_text(encoding="utf-8"))  # multi-statement, like certctl's Exec
    conn.commit()


def apply_standin_schema(conn: psycopg.Connection) -> None:
    from pytest_certload.standin.schema import ensure_demo_rows, ensure_schema

    ensure_schema(conn)
    ensure_demo_rows(conn)
    conn.commit()


def prepare(conn: psycopg.Connection, variant: str) -> None:
    if variant == "standin":
        apply_standin_schema(conn)
    elif variant == "certctl":
        migrations = certctl_migrations_dir()
        if migrations is None:
            raise FileNotFoundError(f"set {MIGRATIONS_ENV} to certctl's migrations directory")
        apply_certctl_migrations(conn, migrations)
    else:
        raise ValueError(f"unknown schema variant {variant!r}; expected one of {SCHEMA_VARIANTS}")


def with_dbname(dsn: str | Secret, dbname: str) -> DsnSecret:
    """The DSN of another database on the same server (URL-form DSNs)."""
    return (dsn if isinstance(dsn, DsnSecret) else DsnSecret(dsn)).with_dbname(dbname)


def create_database(admin_dsn: str | Secret, name: str, template: str | None = None) -> DsnSecret:
    """CREATE DATABASE (optionally from a template); returns its DSN."""
    with connect_pg(admin_dsn, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return with_dbname(admin_dsn, name)


def drop_database(admin_dsn: str | Secret, name: str) -> None:
    with connect_pg(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def scratch_database(admin_dsn: str | Secret, name: str, template: str) -> Iterator[DsnSecret]:
    """A fresh copy of ``template`` for one test; dropped afterwards."""
    dsn = create_database(admin_dsn, name, template)
    try:
        yield dsn
    finally:
        drop_database(admin_dsn, name)


class SchemaTemplates:
    """One throw-away PostgreSQL server with a template database per schema variant.

    ``fresh(variant)`` hands out a new database copied from the variant's template, so tests and
    benchmarks start clean without re-running migrations.
    """

    def __init__(self, workdir: Path) -> None:
        from pytest_certload.stack.postgres import NativePostgres

        self.postgres = NativePostgres(workdir)
        self._templates: set[str] = set()
        self._counter = 0

    def __enter__(self) -> SchemaTemplates:
        self.postgres.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.postgres.stop()

    @property
    def admin_dsn(self) -> DsnSecret:
        return with_dbname(self.postgres.dsn, "postgres")

    def template(self, variant: str) -> str:
        name = f"certload_tpl_{variant}"
        if name not in self._templates:
            dsn = create_database(self.admin_dsn, name)
            with connect_pg(dsn) as conn:
                prepare(conn, variant)
            self._templates.add(name)
        return name

    @contextmanager
    def fresh(self, variant: str) -> Iterator[str]:
        """A new database copied from the variant's template; its DSN as a plain string (see above)."""
        self._counter += 1
        with scratch_database(
            self.admin_dsn, f"certload_{variant}_{self._counter}", self.template(variant)
        ) as dsn:
            yield dsn.reveal()
