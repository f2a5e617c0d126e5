"""The shared store's dialect: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

Several dispatcher replicas may use one database. What keeps them apart:
- `migrate()` runs in one transaction under `pg_advisory_xact_lock(MIGRATE_LOCK)`: a second
  replica waits, then finds the migrations recorded and applies nothing.
- `claim()` runs in one transaction under `pg_advisory_xact_lock(CLAIM_LOCK)`, then picks the
  oldest claimable row with `FOR UPDATE SKIP LOCKED`. The lock serialises claims across
  replicas, which is what makes "fewer than max_running run" and "none of this project runs"
  race-free: row locks alone cannot, because two claimers would lock two *different* queued
  rows and each count the same running set (write skew). A claim is a few index lookups, so
  one at a time costs nothing measurable; SKIP LOCKED still steps over rows another
  transaction holds (a cancel or requeue in flight) instead of waiting on them.
- the partial unique index `deployments_one_running_per_project` refuses a second running
  deployment of a project whatever the code path (belt and braces).
- `append_events()` bumps the deployment's `last_event_id` (a row lock: appends to one
  deployment queue up, appends to others do not) and streams the batch in with `COPY`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from dispatcher.core.errors import StoreError
from dispatcher.store.dialect import EVENT_COLUMNS, Conn, Dialect, os_outage
from dispatcher.store.schema import (
    CLAIM_LOCK,
    MIGRATE_LOCK,
    Clock,
    Migration,
    Row,
    redact_url,
    utc_now,
)
from dispatcher.store.sql import SQLStore

PgConn = psycopg.Connection[DictRow]

_CLAIM_LOCK_TIMEOUT_MS = 10_000
# psycopg_pool doubles its wait between two connection attempts with no cap (1, 2, 4, 8, 16,
# 32 s ...) for `reconnect_timeout` (5 min by default): a server back after a 35 s outage was
# reconnected about 25 s later, after 70 s some 60 s later. Each window this long the attempts
# start over (`_start_over`), so the pool tries at least every 2 s and is back within that.
RECONNECT_WINDOW_S = 5.0
_COPY_EVENTS = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
_PLACEHOLDER = re.compile(r"\?")


def _pg(query: str) -> str:
    """The store's `?` placeholders in psycopg's spelling (no query has a literal `?` or `%`)."""
    return _PLACEHOLDER.sub("%s", query)


def outage(e: BaseException) -> str | None:
    """Why PostgreSQL is away for now, when `e` says it is: the server not answering, a
    connection lost, a lock waited for too long, the pool out of connections for its whole
    timeout (libpq's first line says which); None for a real error."""
    if isinstance(e, psycopg.OperationalError | PoolTimeout):
        text = str(e).strip()
        return f"PostgreSQL: {text.splitlines()[0] if text else type(e).__name__}"
    return os_outage(e)


class _Conn:
    """A pooled psycopg connection as the store's `Conn`."""

    def __init__(self, conn: PgConn) -> None:
        self.pg = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.pg.execute(_pg(sql).encode(), params).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.pg.execute(_pg(sql).encode(), params).rowcount


class PostgresDialect(Dialect):
    name = "postgres"
    no_nul = True
    timestamp_type = "timestamptz"
    next_queue_seq = "nextval('deployments_queue_seq')"  # seq and queue_seq default to it
    true_sql, false_sql = "true", "false"
    candidate_lock = "FOR UPDATE SKIP LOCKED"

    def __init__(
        self, conninfo: str, password: str, min_size: int, max_size: int, connect_timeout_s: float
    ):
        self.where = redact_url(conninfo)
        if password:  # a libpq parameter of its own, never part of `where`
            conninfo = make_conninfo(conninfo, password=password)
        self._lost: Callable[[BaseException], None] | None = None
        self._pool: ConnectionPool[PgConn] = ConnectionPool(
            conninfo,
            connection_class=psycopg.Connection[DictRow],
            kwargs={
                "autocommit": True,  # each method opens its own transaction block
                "row_factory": dict_row,
                "connect_timeout": max(1, int(connect_timeout_s)),
                "application_name": "forge-dispatcher",
            },
            min_size=min_size,
            max_size=max_size,
            check=self._check,
            reconnect_timeout=RECONNECT_WINDOW_S,
            reconnect_failed=_start_over,
            name="forge-dispatcher",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as e:
            self._pool.close()
            raise StoreError(
                f"PostgreSQL at {self.where} accepted no connection within "
                f"{connect_timeout_s:g} s ({_why_not(conninfo, connect_timeout_s)}): is it "
                "running, and are FORGE_DATABASE_URL's host, port, user, password and database "
                "right?"
            ) from e

    @contextmanager
    def write(self) -> Iterator[_Conn]:
        with self._pool.connection() as conn, conn.transaction():
            yield _Conn(conn)

    @contextmanager
    def read(self) -> Iterator[_Conn]:
        with self._pool.connection() as conn:
            yield _Conn(conn)

    def close(self) -> None:
        self._pool.close()

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        self._lost = tell

    def _check(self, conn: PgConn) -> None:
        """The pool's check of a kept connection before lending it; a broken one is told,
        then dropped by the pool (which lends another or connects anew)."""
        try:
            ConnectionPool.check_connection(conn)
        except Exception as e:
            if self._lost is not None:
                self._lost(e)
            raise

    def lock_migrations(self, conn: Conn) -> None:
        conn.rows("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))

    def lock_claims(self, conn: Conn) -> None:
        # A replica stuck inside its claim must not stall the others for good.
        conn.run(f"SET LOCAL lock_timeout = '{_CLAIM_LOCK_TIMEOUT_MS}ms'")
        conn.rows("SELECT pg_advisory_xact_lock(?)", (CLAIM_LOCK,))

    def apply(self, conn: Conn, migration: Migration) -> None:
        assert isinstance(conn, _Conn)
        try:
            conn.pg.execute(migration.sql.encode())  # several statements, no parameters
        except psycopg.Error as e:
            raise StoreError(
                f"PostgreSQL migration {migration.version} ({migration.name}) failed "
                f"on {self.where}: {e}"
            ) from e

    def value(self, column: str, value: Any) -> Any:
        if column == "health" and value is not None:
            return Jsonb(value)
        return value  # timestamps as aware datetimes, booleans as booleans

    def insert_events(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        assert isinstance(conn, _Conn)
        # COPY, not executemany: one round trip of rows, ~2.5x the events/s here.
        with conn.pg.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)

    def is_unique_violation(self, e: BaseException) -> bool:
        return isinstance(e, errors.UniqueViolation)

    def claim_skipped(self, e: BaseException) -> bool:
        return isinstance(e, errors.LockNotAvailable)  # waited _CLAIM_LOCK_TIMEOUT_MS

    def unavailable(self, e: BaseException) -> str | None:
        return outage(e)


class PostgresStore(SQLStore):
    """The store on a PostgreSQL database, shared by the dispatcher's replicas."""

    def __init__(
        self,
        conninfo: str,
        *,
        password: str = "",
        clock: Clock = utc_now,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            PostgresDialect(conninfo, password, min_size, max_size, connect_timeout_s), clock=clock
        )


def _start_over(pool: ConnectionPool[Any]) -> None:
    """A connection attempt gave up at the end of its window: a fresh one starts (the pool's
    `check` grows it back towards its minimum, trying at once, then 1, 2 s ... apart)."""
    pool.check()


def _why_not(conninfo: str, timeout_s: float) -> str:
    """libpq's own reason a connection fails (it names host and user, never the password)."""
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, int(timeout_s))).close()
    except psycopg.Error as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return "a direct connection works now: the server may be overloaded"
