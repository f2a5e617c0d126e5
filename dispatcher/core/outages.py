"""The store or the launcher's backend going away under a running dispatcher (its PostgreSQL
restarted, the disk of its SQLite file full, the Docker engine restarted): which errors mean
"unavailable for now" (what was stored or launched is still there: wait and try again), and
waiting it out.

`OutageWatch.call(operation)` runs one operation; when it fails because its subject is
unavailable (the watch's `classify` says why), the dispatcher's log says so once for the whole
outage ("store unavailable: ...", "Docker engine unavailable: ..."), the call waits (a capped
backoff, the sleep injected) and tries again, until the subject answers — the log then says
"... available again after N s" — or the dispatcher stops (`StoreStopped`). Any other error is
raised as it is. Nothing is dropped meanwhile: a runner's output waits where its launcher keeps
it (a file, the container's log) and is read on once both answer again. `StoreWatch` is the
store's.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# SQLite's primary result codes that pass: disk full, I/O error, cannot open, busy, locked.
_SQLITE_TRANSIENT = {13: "its disk is full", 10: "an I/O error", 14: "it cannot be opened"}
_SQLITE_TRANSIENT |= {5: "it stayed locked", 6: "it stayed locked"}
_OS_TRANSIENT = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota", errno.EIO: "I/O"}


class StoreStopped(RuntimeError):
    """The dispatcher stopped while its store (or its launcher's backend) was unavailable."""


def unavailable(e: BaseException) -> str | None:
    """Why the store is unavailable, when `e` says it is for now (else None: a real error)."""
    if isinstance(e, sqlite3.DatabaseError):
        code = getattr(e, "sqlite_errorcode", None)
        why = _SQLITE_TRANSIENT.get(code & 0xFF) if code is not None else None
        return f"SQLite: {why} ({e})" if why else None
    if isinstance(e, OSError) and e.errno in _OS_TRANSIENT:
        return f"{_OS_TRANSIENT[e.errno]}: {e}"
    psycopg = sys.modules.get("psycopg")  # loaded by a PostgreSQL store only
    if psycopg is not None and isinstance(e, psycopg.OperationalError):
        return f"PostgreSQL: {_first_line(e)}"
    pool = sys.modules.get("psycopg_pool")
    if pool is not None and isinstance(e, pool.PoolTimeout):
        return f"PostgreSQL: {_first_line(e)}"
    return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class OutageWatch:
    """One per dispatcher and subject: calls that wait out an outage, and its two log lines."""

    def __init__(
        self,
        stopped: threading.Event | None = None,
        *,
        subject: str,
        classify: Callable[[BaseException], str | None],
        meanwhile: str,
        logger: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        first_wait_s: float = 0.05,
        max_wait_s: float = 2.0,
    ) -> None:
        self.stopped = stopped or threading.Event()
        self.subject = subject  # "store", "Docker engine": the log's words
        self.classify = classify
        self.meanwhile = meanwhile  # what the log says happens while it waits
        self.log = logging.getLogger(logger)
        self.sleep = sleep
        self.clock = clock
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.outages = 0  # how many outages this dispatcher waited out
        self.last: tuple[float, str] | None = None  # the last one: its seconds, why
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._why = ""

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def call(
        self,
        operation: Callable[[], T],
        what: str,
        recovered: Callable[[float, str], None] | None = None,
    ) -> T:
        """`operation()`, tried again while the store is unavailable; `recovered(seconds,
        reason)` is told how long this call waited, when it did."""
        wait, since, reason = self.first_wait_s, None, ""
        while True:
            try:
                result = operation()
            except Exception as e:
                why = self.classify(e)
                if why is None:
                    raise
                reason = why
                since = self.clock() if since is None else since
                self._failed(why, what)
                if self.stopped.is_set():
                    raise StoreStopped(
                        f"stopped while the {self.subject} was unavailable ({why})"
                    ) from e
                self.sleep(wait)
                wait = min(wait * 2, self.max_wait_s)
                continue
            self._answered()
            if since is not None and recovered is not None:
                recovered(self.clock() - since, reason)
            return result

    def noticed(self, error: BaseException) -> None:
        """An outage met outside a call (a kept connection found broken): said at once, and
        its end said by the next call that succeeds."""
        why = self.classify(error)
        if why is not None:
            self._failed(why, "the next call")

    def _failed(self, why: str, what: str) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since, self._why = self.clock(), why
        self.log.warning(
            "%s unavailable: %s; %s waits (%s), trying again every %g s at most",
            self.subject,
            why,
            what,
            self.meanwhile,
            self.max_wait_s,
        )

    def _answered(self) -> None:
        with self._lock:
            if self._down_since is None:
                return
            seconds, self._down_since = self.clock() - self._down_since, None
            self.last = (seconds, self._why)
            self.outages += 1
        self.log.warning("%s available again after %.1f s: carrying on", self.subject, seconds)


class StoreWatch(OutageWatch):
    """The store's watch: its errors classified by `unavailable`."""

    def __init__(self, stopped: threading.Event | None = None, **kwargs: Any) -> None:
        meanwhile = "nothing is dropped: runners' output is read on once the store answers"
        super().__init__(
            stopped,
            subject="store",
            classify=unavailable,
            meanwhile=meanwhile,
            logger="forge.dispatcher.store",
            **kwargs,
        )
