"""The embedded store's dialect: one SQLite file, the stdlib `sqlite3`.

Thread-safe: the dispatcher calls from the API threads and its workers at once. Each call
borrows a connection from a small pool (at most `pool_size`, each used by one thread at a
time). The file is in WAL mode, so readers never wait for the writer; every write is one
`BEGIN IMMEDIATE` transaction, which takes SQLite's single write lock up front (writers queue
on `busy_timeout` instead of failing halfway), and that lock is what makes `migrate()` and
`claim()` safe between threads and between processes sharing the file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tenacity

from dispatcher.core.errors import StoreError
from dispatcher.store.dialect import EVENT_COLUMNS, Conn, Dialect, os_outage
from dispatcher.store.schema import (
    TIMESTAMP_FIELDS,
    Clock,
    Migration,
    Row,
    iso,
    split_sqlite_script,
    utc_now,
)
from dispatcher.store.sql import SQLStore

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
# SQLite's primary result codes that pass: disk full, I/O error, cannot open, busy, locked.
_TRANSIENT = {13: "its disk is full", 10: "an I/O error", 14: "it cannot be opened"}
_TRANSIENT |= {_SQLITE_BUSY: "it stayed locked", _SQLITE_LOCKED: "it stayed locked"}


def _is_busy(e: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds the lock."""
    code = getattr(e, "sqlite_errorcode", None)
    return (
        isinstance(e, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    )


def outage(e: BaseException) -> str | None:
    """Why the SQLite file is away for now, when `e` says it is: a full disk, an I/O error, a
    file that cannot be opened, a lock held past the busy timeout (the file is still there once
    that passes); None for a real error."""
    if isinstance(e, sqlite3.DatabaseError):
        code = getattr(e, "sqlite_errorcode", None)
        why = _TRANSIENT.get(code & 0xFF) if code is not None else None
        return f"SQLite: {why} ({e})" if why else None
    return os_outage(e)


class _Pool:
    """At most `size` connections, each lent to one thread at a time."""

    def __init__(
        self,
        path: Path,
        size: int,
        busy_timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = path
        self._size = size
        self._busy_timeout_s = busy_timeout_s
        self._sleep = sleep
        self._idle: list[sqlite3.Connection] = []
        self._made = 0
        self._closed = False
        self._cond = threading.Condition()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # autocommit; writes open their own BEGIN IMMEDIATE
            check_same_thread=False,  # lent to one thread at a time, closed by any
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        mode = self._enter_wal(conn)
        if mode != "wal":
            raise StoreError(
                f"SQLite could not put {self._path} in WAL mode (got {mode!r}): "
                "use a local file system, or FORGE_DATABASE_URL=postgresql://..."
            )
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across a process crash
        conn.execute("PRAGMA foreign_keys = ON")

    def _enter_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL (a no-op once it is). On a new file the switch needs an
        exclusive lock that SQLite does not wait for through `busy_timeout` when another
        process is opening the same file, so a busy answer is retried with a bounded
        exponential backoff, up to the busy timeout; past it, the error names the file."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_busy),
            wait=tenacity.wait_random_exponential(multiplier=0.002, max=0.1),
            stop=tenacity.stop_after_delay(self._busy_timeout_s),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise
            raise StoreError(
                f"SQLite database {self._path} stayed locked by another process for more than "
                f"{self._busy_timeout_s:g} s while switching it to WAL mode: is another program "
                "holding a transaction on it?"
            ) from e
        return str(mode).lower()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError(f"the SQLite store {self._path} is closed")
                if self._idle:
                    conn: sqlite3.Connection | None = self._idle.pop()
                    break
                if self._made < self._size:
                    self._made += 1
                    conn = None
                    break
                self._cond.wait()
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._cond:
                    self._made -= 1
                    self._cond.notify()
                raise
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._cond:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            self._cond.notify_all()


class _Conn:
    """A pooled sqlite3 connection as the store's `Conn`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._conn.execute(sql, params).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(sql, rows)


class SQLiteDialect(Dialect):
    name = "sqlite"
    no_nul = False
    timestamp_type = "text"
    # SQLite has no sequences: a new row numbers itself inside the write lock.
    seq_columns = "seq, queue_seq, "
    seq_values = (
        "(SELECT coalesce(max(seq), 0) + 1 FROM deployments),"
        " (SELECT coalesce(max(queue_seq), 0) + 1 FROM deployments), "
    )
    next_queue_seq = "(SELECT max(queue_seq) + 1 FROM deployments)"
    true_sql, false_sql = "1", "0"

    def __init__(
        self, path: Path, pool_size: int, busy_timeout_s: float, sleep: Callable[[float], None]
    ) -> None:
        self.path = path
        self._pool = _Pool(path, pool_size, busy_timeout_s, sleep)

    @contextlib.contextmanager
    def write(self) -> Iterator[_Conn]:
        """One write transaction holding SQLite's write lock from its first statement (the
        lock that also serialises migrate() and claim() across threads and processes)."""
        with self._pool.connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise self._locked(e) from e
            try:
                yield _Conn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back itself on a full disk, I/O error
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read(self) -> Iterator[_Conn]:
        with self._pool.connection() as conn:
            yield _Conn(conn)

    def _locked(self, e: sqlite3.OperationalError) -> Exception:
        if _is_busy(e):
            return StoreError(
                f"SQLite database {self.path} stayed locked by another writer past the busy "
                "timeout: is another process holding a long transaction on it?"
            )
        return e

    def close(self) -> None:
        self._pool.close()

    def lock_migrations(self, conn: Conn) -> None:
        """Nothing more: write()'s BEGIN IMMEDIATE holds the file's one write lock."""

    def lock_claims(self, conn: Conn) -> None:
        """Nothing more: write()'s BEGIN IMMEDIATE holds the file's one write lock."""

    def apply(self, conn: Conn, migration: Migration) -> None:
        for statement in split_sqlite_script(migration.sql):
            conn.run(statement)

    def value(self, column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in TIMESTAMP_FIELDS or column == "updated_at":
            return iso(value)
        if column == "health":
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if column == "cancel_requested":
            return int(value)
        return value

    def insert_events(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        assert isinstance(conn, _Conn)
        conn.many(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )

    def is_unique_violation(self, e: BaseException) -> bool:
        return (
            isinstance(e, sqlite3.IntegrityError)
            and e.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        )

    def claim_skipped(self, e: BaseException) -> bool:
        return False  # claims wait on the write lock (busy_timeout) rather than give way

    def unavailable(self, e: BaseException) -> str | None:
        return outage(e)


class SQLiteStore(SQLStore):
    """The store on one SQLite file (created with its folder when missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = utc_now,
        pool_size: int = 8,
        busy_timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(SQLiteDialect(self.path, pool_size, busy_timeout_s, sleep), clock=clock)
