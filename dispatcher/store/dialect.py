"""What differs between the store's two databases, behind one interface: a `Dialect`
(`dispatcher.store.sqlite`, `dispatcher.store.postgres`) says how a connection is lent and a
transaction opened, how values are adapted, how claims and migrations are serialised across
processes, how a batch of events is written, and which of its driver's errors mean the
database is away for now (`unavailable`). The store itself is written once, in SQL, over it
(`dispatcher.store.sql`)."""

from __future__ import annotations

import abc
import errno
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dispatcher.store.schema import Migration, Row

EVENT_COLUMNS = ("deployment_id", "id", "attempt", "type", "ts", "payload", "runner_seq")
_OS_OUTAGES = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota", errno.EIO: "I/O"}


def os_outage(e: BaseException) -> str | None:
    """A file system that cannot take a write for now (full, over quota, an I/O error)."""
    if isinstance(e, OSError) and e.errno in _OS_OUTAGES:
        return f"{_OS_OUTAGES[e.errno]}: {e}"
    return None


class Conn(Protocol):
    """A connection as the store uses it: one statement, its rows (or its row count)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...


class Dialect(abc.ABC):
    name: str  # the migrations folder: "sqlite" | "postgres"
    no_nul: bool  # the database refuses U+0000 in text
    timestamp_type: str  # the column type of a moment
    # INSERT INTO deployments: the extra columns and values that number a new row
    seq_columns: str = ""
    seq_values: str = ""
    next_queue_seq: str  # an expression: the queue position after every other
    candidate_lock: str = ""  # appended to the claim's candidate query
    true_sql: str  # boolean literals as the partial indexes on queue_head are written
    false_sql: str

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[Conn]:
        """One write transaction."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Conn]:
        """A connection for reads (autocommit)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        """See `Store.on_connection_lost`; a dialect without a pool of kept connections has
        nothing to tell."""
        del tell  # nothing kept between calls here

    @abc.abstractmethod
    def lock_migrations(self, conn: Conn) -> None:
        """Serialise migrate() across processes, in the transaction write() opened."""

    @abc.abstractmethod
    def lock_claims(self, conn: Conn) -> None:
        """Serialise claim() and every change of the queue's heads across processes, in the
        transaction write() opened."""

    @abc.abstractmethod
    def apply(self, conn: Conn, migration: Migration) -> None: ...

    @abc.abstractmethod
    def value(self, column: str, value: Any) -> Any:
        """A Python value (timestamps as aware datetimes, health as a dict) as the driver
        takes it for `column`."""

    @abc.abstractmethod
    def insert_events(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Rows of EVENT_COLUMNS, the payload as JSON text."""

    @abc.abstractmethod
    def is_unique_violation(self, e: BaseException) -> bool: ...

    @abc.abstractmethod
    def claim_skipped(self, e: BaseException) -> bool:
        """A claim that gave way to another process's (logged; the next round tries again)."""

    @abc.abstractmethod
    def unavailable(self, e: BaseException) -> str | None:
        """Why the database is away for now, when `e` says it is (what it holds is still
        there: wait and try again); None for a real error."""
