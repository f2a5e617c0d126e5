"""From a runner's stdout to stored events and dashboard fields.

`Ingestor.line()` parses each line with the runner's own schema (`runner.events.parse_event`);
a line that is not an event becomes a masked `log` event, never a crash. Events are written in
batches (one transaction per batch). What the dashboard shows (current step, URLs, health) is
`fold`ed from the events as they pass — a pure `(state, event) → (state, [change])` — and the
changes go to the attempt as typed values (`Patch`, `Sealed`); the final status comes from
`derive_status`, a pure function of the `eof`, the result and the exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from dispatcher.core.metrics import METRICS
from dispatcher.core.outages import StoreWatch
from dispatcher.launchers.base import Exit
from dispatcher.model import Deployment, Patch, Status, StoredEvent
from dispatcher.store.base import NewEvent, Store
from runner.checkpoints import SEALED_DB_PASSWORD
from runner.events import EventFormatError, EventType, parse_event, utc_now
from runner.masking import Masker

_URL_CHECKPOINTS: dict[str, Callable[[str], Patch]] = {
    "github.repo_url": lambda url: Patch(repo_url=url),
    "supabase.url": lambda url: Patch(database_url=url),
    "vercel.url": lambda url: Patch(app_url=url),
}
_OUTCOMES = {
    "live": Status.LIVE,
    "unhealthy": Status.UNHEALTHY,
    "cancelled": Status.CANCELLED,
    "failed": Status.FAILED,
    "bad_input": Status.FAILED,
    "removed": Status.LIVE,
    "planned": Status.LIVE,
}


@dataclass(frozen=True)
class Folded:
    """What the events of one attempt said so far."""

    step: str | None = None
    result: dict[str, Any] | None = None
    eof: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sealed:
    """A sealed checkpoint the runner wants back on the project's next attempt (opaque
    without the dispatcher's private key; kept apart from the deployment row)."""

    key: str
    value: str


Change = Patch | Sealed


def fold(state: Folded, kind: EventType, payload: dict[str, Any]) -> tuple[Folded, list[Change]]:
    """One runner event folded into the attempt's state, and the changes it makes."""
    if kind is EventType.STEP_STARTED:
        step = str(payload.get("step"))
        return replace(state, step=step), [Patch(step=step)]
    if kind is EventType.CHECKPOINT:
        key, value = str(payload.get("key")), payload.get("value")
        if not isinstance(value, str):
            return state, []
        if key == SEALED_DB_PASSWORD:
            return state, [Sealed(key, value)]
        url = _URL_CHECKPOINTS.get(key)
        return state, [url(value)] if url else []
    if kind is EventType.RESULT:
        raw_urls = payload.get("urls")
        urls: dict[str, Any] = raw_urls if isinstance(raw_urls, dict) else {}
        changes: dict[str, Any] = {
            column: urls[name]
            for name, column in (
                ("app", "app_url"),
                ("repo", "repo_url"),
                ("database", "database_url"),
            )
            if isinstance(urls.get(name), str)
        }
        if isinstance(payload.get("health"), dict) and payload["health"]:
            changes["health"] = payload["health"]
        return replace(state, result=payload), [Patch(**changes)] if changes else []
    if kind is EventType.EOF:
        return replace(state, eof=payload), []
    return state, []


def write_change(store: Store, deployment: Deployment, change: Change) -> Deployment | None:
    """A change written to the store: the deployment as updated, or None when its row did not
    change (a sealed value is kept per project, apart from the row)."""
    if isinstance(change, Sealed):
        store.put_sealed(deployment.project_id, change.key, change.value)
        return None
    return store.update(deployment.id, change) if change else None


def derive_status(
    folded: Folded,
    exit: Exit,
    *,
    cancel_requested: bool = False,
    timed_out: str | None = None,
) -> tuple[Status, str | None]:
    """(status, error) of a finished attempt: the runner's own `eof` when it wrote one, else
    the reason the process ended (cancelled, deadline or idle timeout, OOM, lost, exit code)."""
    if folded.eof is not None:
        status = _OUTCOMES.get(str(folded.eof.get("outcome")), Status.FAILED)
        error = None
        if status is not Status.LIVE and folded.result is not None:
            error = folded.result.get("error") or (
                "unhealthy" if status is Status.UNHEALTHY else None
            )
        return status, error
    if cancel_requested:
        return Status.CANCELLED, "cancelled"
    if timed_out is not None:
        return Status.FAILED, timed_out
    if exit.reason == "oom-killed":
        return Status.FAILED, "the runner was OOM-killed"
    if exit.reason == "lost" or exit.code is None:
        return Status.FAILED, "lost: the runner is gone and left no result"
    return Status.FAILED, f"the runner exited {exit.code} without a final event" + (
        f" ({exit.reason})" if exit.reason else ""
    )


class Ingestor:
    """One attempt's stdout into the store, in batches; thread-safe."""

    def __init__(
        self,
        store: Store,
        deployment_id: str,
        attempt: int,
        masker: Masker,
        publish: Callable[[StoredEvent], None] = lambda event: None,
        on_change: Callable[[list[Change]], None] = lambda changes: None,
        batch: int = 200,
        watch: StoreWatch | None = None,
    ) -> None:
        self.store = store
        self.watch = watch or StoreWatch()
        self.deployment_id = deployment_id
        self.attempt = attempt
        self.masker = masker
        self.publish = publish
        self.on_change = on_change
        self.batch = batch
        self.skip_through_seq = 0  # a re-attach: runner events up to here are stored already
        self.folded = Folded()
        self.last_runner_seq = 0
        self._pending: list[NewEvent] = []
        self._lock = threading.Lock()
        self.count = 0
        self._outages_told = self.watch.outages  # those before this attempt are not its own

    def line(self, text: str) -> None:
        text = text.rstrip("\n")
        if not text.strip():
            return
        try:
            event = parse_event(text)
        except EventFormatError as e:
            self._add(
                NewEvent(
                    self.attempt,
                    EventType.LOG.value,
                    utc_now(),
                    {
                        "level": "warning",
                        "message": self.masker.mask(text[:4000]),
                        "source": "runner-stdout",
                        "problem": str(e),
                    },
                )
            )
            return
        if event.seq <= self.skip_through_seq:
            return
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
            self.skip_through_seq = max(self.skip_through_seq, event.runner_seq)
        self.last_runner_seq = self.skip_through_seq

    def note(self, kind: str, **payload: Any) -> None:
        """An event the dispatcher itself adds (status changes, launch, reattach)."""
        self._add(NewEvent(self.attempt, kind, utc_now(), payload))
        self.flush()

    def _add(self, event: NewEvent) -> None:
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self.batch
        if full or event.type in (EventType.EOF.value, EventType.RESULT.value):
            self.flush()

    def flush(self) -> None:
        """The pending events into the store, one transaction; while the store is unavailable
        this waits (`StoreWatch`), then stores each pending event once — a batch whose commit
        was lost with the connection is found stored, not written again. A store outage the
        dispatcher waited out while this attempt ran (whichever call met it) is told in the
        attempt's own events."""
        with self._lock:
            news = self._outage_news()
            pending, self._pending = self._pending + news, []
            if not pending:
                return
            tries: list[int] = []

            def append() -> list[StoredEvent]:
                tries.append(1)
                if len(tries) == 1:
                    return self.store.append_events(self.deployment_id, pending)
                found, todo = self._stored_already(pending)
                return found + self.store.append_events(self.deployment_id, todo)

            stored = self.watch.call(append, f"storing the events of {self.deployment_id}")
            self._pending = self._outage_news() + self._pending  # one that ended meanwhile
        self.count += len(stored)
        METRICS.events_ingested.inc(len(stored))
        for event in stored:
            self.publish(event)
        if self._pending and self._pending[0].payload.get("source") == "store-outage":
            self.flush()

    def _outage_news(self) -> list[NewEvent]:
        """The note of a store outage that ended since the last one told (none, or one)."""
        if self.watch.outages == self._outages_told or self.watch.last is None:
            return []
        self._outages_told = self.watch.outages
        seconds, why = self.watch.last
        message = (
            f"the store was unavailable for {seconds:.1f} s ({self.masker.mask(why)}): the runner"
            " went on and its events were stored once it answered again"
        )
        payload = {"level": "warning", "message": message, "source": "store-outage"}
        return [NewEvent(self.attempt, EventType.LOG.value, utc_now(), payload)]

    def _stored_already(self, pending: list[NewEvent]) -> tuple[list[StoredEvent], list[NewEvent]]:
        """(what of `pending` the store has, what it lacks): runner events by their seq, the
        dispatcher's own by type and time (each has its own)."""
        seen: dict[Identity, StoredEvent] = {}
        after = 0
        while page := self.store.events(self.deployment_id, after_id=after):
            for e in page:
                seen[_identity(e.attempt, e.runner_seq, e.type, e.ts)] = e
            after = page[-1].id
        found, todo = [], []
        for event in pending:
            key = _identity(event.attempt, event.runner_seq, event.type, event.ts)
            if key in seen:
                found.append(seen[key])
            else:
                todo.append(event)
        return found, todo


Identity = tuple[int, int | None, str, str]


def _identity(attempt: int, seq: int | None, kind: str, ts: str) -> Identity:
    """What tells one event of a deployment from another: a runner event's seq in its attempt;
    for the dispatcher's own, their type and time."""
    return (attempt, seq, kind, "" if seq is not None else ts)
