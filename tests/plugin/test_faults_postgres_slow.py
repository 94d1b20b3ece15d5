"""PostgresSlow on a throw-away PostgreSQL: each mode slows what it says, and undo leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from pytest_certload.faults import PostgresSlow
from pytest_certload.faults.postgres_slow import FUNCTION, TRIGGER
from pytest_certload.stack.postgres import NativePostgres, find_pg_bin
from pytest_certload.stack.secret import connect_pg


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativePostgres]:
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL binaries (apt-get install postgresql)")
    server = NativePostgres(tmp_path_factory.mktemp("faults-pg"), profile="fast").start()
    try:
        with connect_pg(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE managed_certificates (id text PRIMARY KEY)")
        yield server
    finally:
        server.stop()


def insert_seconds(pg: NativePostgres, row: str, timeout_ms: int = 5000) -> float:
    with connect_pg(pg.dsn, autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = {timeout_ms}")
        started = time.monotonic()
        conn.execute("INSERT INTO managed_certificates VALUES (%s)", (row,))
        return time.monotonic() - started


def test_delay_mode_slows_every_write_and_undo_removes_the_trigger(pg):
    fault = PostgresSlow(pg.dsn, hold_s=1, delay_s=0.3)
    assert insert_seconds(pg, "before") < 0.3
    with fault:
        fault.inject()
        assert insert_seconds(pg, "during") >= 0.3
    assert insert_seconds(pg, "after") < 0.3
    with connect_pg(pg.dsn) as conn:
        assert (
            conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", (TRIGGER,)).fetchone()[0] == 0
        )
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", (FUNCTION,)).fetchone()[0] == 0


def test_lock_mode_holds_writes_not_reads_until_undone(pg):
    fault = PostgresSlow(pg.dsn, hold_s=1, mode="lock")
    with fault:
        fault.inject()
        with connect_pg(pg.dsn, autocommit=True) as conn:
            conn.execute("SET statement_timeout = 300")
            assert conn.execute("SELECT count(*) FROM managed_certificates").fetchone() is not None
        with pytest.raises(psycopg.errors.QueryCanceled):
            insert_seconds(pg, "locked", timeout_ms=300)  # waits on the lock until the timeout
    assert insert_seconds(pg, "unlocked") < 0.3
    assert [e.what for e in fault.events] == ["inject", "injected", "undone"]
