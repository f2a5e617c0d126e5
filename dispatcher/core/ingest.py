"""From a runner's stdout to stored events and dashboard fields.

`Ingestor.line()` parses each line with the runner's own schema (`runner.events.parse_event`);
a line that is not an event becomes a masked `log` event, never a crash. A runner event is kept
once by its seq: a stream read again (after its backend's outage, or by a restarted
dispatcher) repeats lines, and those already kept are skipped. Events are written in batches
(one transaction per batch) through `record` (`Deployments.record`: stored, then published).
What the dashboard shows (current step, URLs, health) is `fold`ed from the events as they pass
(`core.status`) and the changes go to `on_change` as typed values (`Patch`, `Sealed`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from dispatcher.core.outages import OutageWatch
from dispatcher.core.ports import NewEvent
from dispatcher.core.status import Change, Folded, fold
from dispatcher.model import StoredEvent
from runner.events import EventFormatError, EventType, parse_event, utc_now
from runner.masking import Masker

Record = Callable[[list[NewEvent]], list[StoredEvent]]


class Ingestor:
    """One attempt's stdout into the store, in batches; thread-safe."""

    def __init__(
        self,
        record: Record,
        attempt: int,
        masker: Masker,
        on_change: Callable[[list[Change]], None] = lambda changes: None,
        batch: int = 200,
        store_outages: OutageWatch | None = None,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self.record = record
        self.attempt = attempt
        self.masker = masker
        self.on_change = on_change
        self.batch = batch
        self.store_outages = store_outages  # the store's watch: an outage is told in the events
        self.now = now
        self.folded = Folded()
        self.last_runner_seq = 0  # runner events up to here are kept already
        self._pending: list[NewEvent] = []
        self._lock = threading.Lock()
        self.count = 0
        # Outages before this attempt are not its own.
        self._outages_told = store_outages.outages if store_outages is not None else 0

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        if not text.strip():
            return
        try:
            event = parse_event(text)
        except EventFormatError as e:
            payload = {
                "level": "warning",
                "message": self.masker.mask(text[:4000]),
                "source": "runner-stdout",
                "problem": str(e),
            }
            self._add(NewEvent(self.attempt, EventType.LOG.value, self.now(), payload))
            return
        if event.seq <= self.last_runner_seq:
            return  # read before: kept already
        first = self.last_runner_seq == 0
        self.last_runner_seq = event.seq
        self.folded, changes = fold(self.folded, event.type, event.payload)
        self._add(
            NewEvent(self.attempt, event.type.value, event.ts, dict(event.payload), event.seq)
        )
        if changes or first:  # the first event shows the runner is up: no batching delay
            self.flush()
        if changes:
            self.on_change(changes)

    def replay(self, stored: Iterable[StoredEvent]) -> None:
        """A re-attach: this attempt's events as stored before. Their runner events are folded
        (step, URLs, result, eof) and skipped when the runner's stream repeats them."""
        for event in stored:
            if event.runner_seq is None:
                continue
            try:
                kind = EventType(event.type)
            except ValueError:
                continue  # not a runner event type: nothing to fold
            self.folded, _ = fold(self.folded, kind, event.payload)  # applied when first seen
            self.last_runner_seq = max(self.last_runner_seq, event.runner_seq)

    def note(self, kind: str, **payload: Any) -> None:
        """An event the dispatcher itself adds (launch, re-attach, a backend's outage)."""
        self._add(NewEvent(self.attempt, kind, self.now(), payload))
        self.flush()

    def _add(self, event: NewEvent) -> None:
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self.batch
        if full or event.type in (EventType.EOF.value, EventType.RESULT.value):
            self.flush()

    def flush(self) -> None:
        """The pending events into the store, one transaction (an outage is waited out by the
        store `record` writes to). A store outage the dispatcher waited out while this attempt
        ran (whichever call met it) is told in the attempt's own events."""
        with self._lock:
            pending, self._pending = self._outage_news() + self._pending, []
            if not pending:
                return
            stored = self.record(pending)
            self._pending = self._outage_news() + self._pending  # one that ended meanwhile
        self.count += len(stored)
        if self._pending and self._pending[0].payload.get("source") == "store-outage":
            self.flush()

    def _outage_news(self) -> list[NewEvent]:
        """The note of a store outage that ended since the last one told (none, or one)."""
        watch = self.store_outages
        if watch is None or watch.outages == self._outages_told or watch.last is None:
            return []
        self._outages_told = watch.outages
        seconds, why = watch.last
        message = (
            f"the store was unavailable for {seconds:.1f} s ({self.masker.mask(why)}): the runner"
            " went on and its events were stored once it answered again"
        )
        payload = {"level": "warning", "message": message, "source": "store-outage"}
        return [NewEvent(self.attempt, EventType.LOG.value, self.now(), payload)]
