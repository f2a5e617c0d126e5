"""The store or the launcher's backend going away under a running dispatcher (its PostgreSQL
restarted, the disk of its SQLite file full, the Docker engine restarted), and waiting it out.

An adapter says what an outage is, in the core's words: the store raises `StoreUnavailable`,
a launcher classifies its own errors (`Launcher.unavailable`). `OutageWatch.call(operation)`
runs one operation; when it fails because its subject is unavailable, the dispatcher's log says
so once for the whole outage ("store unavailable: ...", "Docker engine unavailable: ..."), the
call waits (a capped backoff, the sleep injected) and tries again, until the subject answers —
the log then says "... available again after N s" — or the dispatcher stops (`StoreStopped`).
Any other error is raised as it is. The watch is applied once around each adapter
(`core.waiting`), never at a call site.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from dispatcher.core.errors import StoreStopped, StoreUnavailable

T = TypeVar("T")


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

    def call(self, operation: Callable[[], T], what: str) -> T:
        """`operation()`, tried again while the subject is unavailable."""
        waits = self.waits()
        while True:
            try:
                result = operation()
            except Exception as e:  # noqa: BLE001 - wait_out raises it unless it is an outage
                self.wait_out(e, what, waits)
                continue
            self.answered()
            return result

    def waits(self) -> Iterator[float]:
        """The pauses between two tries: doubling from `first_wait_s`, capped at `max_wait_s`."""
        wait = self.first_wait_s
        while True:
            yield wait
            wait = min(wait * 2, self.max_wait_s)

    def wait_out(self, error: Exception, what: str, waits: Iterator[float]) -> None:
        """After `error`: raise it when it is not an outage; else tell the outage (once for
        all of it), and pause for the next of `waits` — or raise `StoreStopped` when the
        dispatcher is stopping."""
        why = self.classify(error)
        if why is None:
            raise error
        self._failed(why, what)
        if self.stopped.is_set():
            raise StoreStopped(
                f"stopped while the {self.subject} was unavailable ({why})"
            ) from error
        self.sleep(next(waits))

    def noticed(self, error: BaseException) -> None:
        """An outage met outside a call (a kept connection found broken): said at once, and
        its end said by the next call that succeeds."""
        why = self.classify(error)
        if why is not None:
            self._failed(why, "the next call")

    def answered(self) -> None:
        """The subject answered: an outage in progress is over."""
        with self._lock:
            if self._down_since is None:
                return
            seconds, self._down_since = self.clock() - self._down_since, None
            self.last = (seconds, self._why)
            self.outages += 1
        self.log.warning("%s available again after %.1f s: carrying on", self.subject, seconds)

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


def store_outage(error: BaseException) -> str | None:
    """Why the store is away, when `error` is the store adapter's `StoreUnavailable`."""
    return str(error) if isinstance(error, StoreUnavailable) else None


class StoreWatch(OutageWatch):
    """The store's watch."""

    def __init__(self, stopped: threading.Event | None = None, **kwargs: Any) -> None:
        meanwhile = "nothing is dropped: runners' output is read on once the store answers"
        super().__init__(
            stopped,
            subject="store",
            classify=store_outage,
            meanwhile=meanwhile,
            logger="forge.dispatcher.store",
            **kwargs,
        )
