"""A minimal asyncio connection pool for psycopg (psycopg_pool is not a dependency).

Connections are opened lazily up to ``max_size``; a broken connection is discarded and replaced
on the next checkout, so a PostgreSQL restart heals without restarting the stand-in.
:class:`PoolSlot` lets the resource handlers, built with the app, share the pool the app opens
when it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import psycopg


class ConnectionPool:
    def __init__(self, dsn: str, max_size: int = 20, connect_timeout: float = 5.0) -> None:
        self._dsn = dsn
        self._max = max_size
        self._timeout = connect_timeout
        self._idle: asyncio.LifoQueue[psycopg.AsyncConnection] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(max_size)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection in autocommit mode; use ``conn.transaction()`` for multi-statement work."""
        async with self._slots:
            conn = None
            while not self._idle.empty():
                candidate = self._idle.get_nowait()
                if not candidate.closed:
                    conn = candidate
                    break
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=int(self._timeout)
                )
            try:
                yield conn
            finally:
                if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._idle.put_nowait(conn)
                else:
                    await conn.close()

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


class PoolSlot:
    """The app's one pool: opened when the aiohttp app starts, closed when it stops (app.py).

    Every resource holds the slot from the start and checks connections out of whatever pool is in it.
    """

    def __init__(self) -> None:
        self._pool: ConnectionPool | None = None

    def open(self, dsn: str, max_size: int) -> None:
        self._pool = ConnectionPool(dsn, max_size=max_size)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
        """A connection from the open pool (see :meth:`ConnectionPool.connection`)."""
        if self._pool is None:
            raise RuntimeError("the stand-in's connection pool is not open (the app has not started)")
        return self._pool.connection()
