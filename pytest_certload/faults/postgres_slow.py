"""PostgreSQL made slow for a window without stopping it.

Two ways, both undone on exit:

* ``delay`` (default): a ``BEFORE INSERT OR UPDATE ... FOR EACH ROW`` trigger on a hot table that
  calls ``pg_sleep`` -- every write to it takes ``delay_s`` longer, inside certctl's own
  transaction (so its row locks are held longer too, as on a slow disk);
* ``lock``: a separate connection holds ``LOCK TABLE <table> IN EXCLUSIVE MODE`` for the window --
  reads go on, every write queues behind the lock until the window ends.

The hot table of certctl's API mix is ``managed_certificates`` (every POST /api/v1/certificates
inserts there). The test measures that the window really slowed the requests it was meant to
(``fault_window_duration`` in the phase's samples), rather than trusting the mechanism.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_certload.faults.injector import Injector
from pytest_certload.stack.secret import DsnSecret, connect_pg

FUNCTION = "certload_fault_delay"
TRIGGER = "certload_fault_delay_trigger"
MODES = ("delay", "lock")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class PostgresSlow(Injector):
    kind = "postgres_slow"

    def __init__(
        self,
        dsn: DsnSecret,
        *,
        hold_s: float,
        mode: str = "delay",
        table: str = "managed_certificates",
        delay_s: float = 0.2,
    ) -> None:
        super().__init__(hold_s=hold_s)
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        if not _IDENT.match(table):
            raise ValueError(f"table {table!r}: a plain lower-case identifier is expected")
        if not 0 < delay_s <= 10:
            raise ValueError(f"delay_s={delay_s!r}: expected 0 < delay_s <= 10")
        self.dsn, self.mode, self.table, self.delay_s = dsn, mode, table, delay_s
        self._holder: Any = None  # the lock-holding connection (lock mode)

    def describe(self) -> str:
        if self.mode == "delay":
            return f"PostgreSQL: every write to {self.table} delayed {self.delay_s * 1000:.0f} ms"
        return f"PostgreSQL: {self.table} locked IN EXCLUSIVE MODE (writes wait, reads go on)"

    def _inject(self) -> None:
        if self.mode == "lock":
            self._holder = connect_pg(self.dsn, connect_timeout=5)
            self._holder.execute(f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")  # held until undo
            return
        with connect_pg(self.dsn, connect_timeout=5, autocommit=True) as conn:
            conn.execute(
                f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM pg_sleep({self.delay_s:.3f}); RETURN NEW; END $$"
            )
            conn.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {self.table}")
            conn.execute(
                f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE ON {self.table} "
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
            )

    def _undo(self) -> None:
        if self.mode == "lock":
            holder, self._holder = self._holder, None
            if holder is not None:
                holder.rollback()
                holder.close()
            return
        with connect_pg(self.dsn, connect_timeout=5, autocommit=True) as conn:
            conn.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {self.table}")
            conn.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
