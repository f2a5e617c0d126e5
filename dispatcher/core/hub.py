"""A deployment's events, live: the hub that fans stored events out to subscribers, and the
follower that turns "what is stored after id N, then whatever comes" into one gapless,
duplicate-free stream that ends when the deployment does.

The ingest side appends a batch to the store and then `EventHub.publish`es the stored events,
from whatever thread it runs on. A subscriber lives on the API's event loop: publishing hands
each event to its `asyncio.Queue` with `loop.call_soon_threadsafe`. A follower subscribes
*before* it reads the backlog, so an event stored meanwhile is either in the backlog or
published to it; ids it has passed are dropped. A subscriber that falls too far behind (its
queue full) or sees a gap in the ids reads the missing ones back from the store.

The stream ends once the deployment is terminal and the `eof` of its last attempt was sent (or,
when a runner died without one, once the deployment has been seen terminal with nothing more
stored), so a consumer never waits for a terminator that will not come.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType

import anyio.to_thread

from dispatcher.core.ports import Store
from dispatcher.model import TERMINAL, Deployment, StoredEvent

PAGE = 1_000
QUEUE_SIZE = 10_000


class Subscription:
    """Live events of one deployment for one consumer on one event loop."""

    def __init__(
        self, hub: EventHub, deployment_id: str, loop: asyncio.AbstractEventLoop, size: int
    ) -> None:
        self.hub = hub
        self.deployment_id = deployment_id
        self.loop = loop
        self.queue: asyncio.Queue[StoredEvent] = asyncio.Queue(size)
        self.overflowed = False  # events were dropped: read them back from the store

    def _deliver(self, events: list[StoredEvent]) -> None:  # on self.loop
        for event in events:
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.overflowed = True
                return

    async def get(self, timeout_s: float) -> StoredEvent | None:
        """The next live event, or None when none came within `timeout_s`."""
        if not self.queue.empty():  # the common case under load: no timer, no task
            return self.queue.get_nowait()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None

    def take_queued(self) -> list[StoredEvent]:
        """Every event queued by now, without waiting."""
        taken = []
        while not self.queue.empty():
            taken.append(self.queue.get_nowait())
        return taken

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False

    def close(self) -> None:
        self.hub.unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventHub:
    """Fan-out of stored events to the API's subscribers, per deployment. Thread-safe."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._queue_size = queue_size

    def subscribe(self, deployment_id: str) -> Subscription:
        """Call on the event loop that will consume it."""
        sub = Subscription(self, deployment_id, asyncio.get_running_loop(), self._queue_size)
        with self._lock:
            self._subscribers.setdefault(deployment_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.deployment_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[sub.deployment_id]

    def subscribers(self, deployment_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(deployment_id, ()))

    def publish(self, event: StoredEvent) -> None:
        """Hand one stored event to its deployment's subscribers; from any thread."""
        self.publish_all([event])

    def publish_all(self, events: Iterable[StoredEvent]) -> None:
        events = list(events)
        if not events:
            return
        by_deployment: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_deployment.setdefault(event.deployment_id, []).append(event)
        with self._lock:
            targets = [
                (sub, batch)
                for dep, batch in by_deployment.items()
                for sub in self._subscribers.get(dep, ())
            ]
        for sub, batch in targets:  # one hand-over per subscriber and batch, not per event
            try:
                sub.loop.call_soon_threadsafe(sub._deliver, batch)
            except RuntimeError:  # its loop is closed: the consumer is gone
                self.unsubscribe(sub)


def _eof_attempts(events: Iterable[StoredEvent]) -> set[int]:
    return {event.attempt for event in events if event.type == "eof"}


async def stored_events(store: Store, deployment_id: str, after: int) -> AsyncIterator[StoredEvent]:
    """Every stored event with id > `after`, page by page, then stop."""
    last = after
    while True:
        page = await anyio.to_thread.run_sync(store.events, deployment_id, last, PAGE)
        for event in page:
            last = event.id
            yield event
        if len(page) < PAGE:
            return


async def follow(
    store: Store,
    subscribe: Callable[[], Subscription],
    deployment_id: str,
    after: int,
    tick_s: float = 1.0,
) -> AsyncIterator[StoredEvent]:
    """Stored events after `after`, then live ones, each once and in id order, until the
    deployment is over (see the module doc)."""
    async for batch in follow_batches(store, subscribe, deployment_id, after, tick_s):
        for event in batch:
            yield event


async def follow_batches(
    store: Store,
    subscribe: Callable[[], Subscription],
    deployment_id: str,
    after: int,
    tick_s: float = 1.0,
) -> AsyncIterator[list[StoredEvent]]:
    """`follow`, as the batches it has at hand: a page of the backlog, or every live event
    queued by now (a writer sends each batch at once, not one send per event). Subscribes (on
    the running loop) before it reads the backlog, and unsubscribes however the stream ends."""
    last = after
    eofs: set[int] = set()

    def keep(events: Iterable[StoredEvent]) -> list[StoredEvent]:
        nonlocal last
        kept = []
        for event in events:
            if event.id > last:
                last = event.id
                if event.type == "eof":
                    eofs.add(event.attempt)
                kept.append(event)
        return kept

    async def catch_up() -> AsyncIterator[list[StoredEvent]]:
        while True:
            page = await anyio.to_thread.run_sync(store.events, deployment_id, last, PAGE)
            kept = keep(page)
            if kept:
                yield kept
            if len(page) < PAGE:
                return

    def over(dep: Deployment | None, seen_terminal: int) -> bool:
        if dep is None:
            return True
        if dep.status not in TERMINAL:
            return False
        return dep.attempt == 0 or dep.attempt in eofs or seen_terminal >= 2

    get: Callable[[str], Deployment | None] = store.get
    async with subscribe() as sub:
        async for batch in catch_up():
            yield batch
        seen_terminal = 0
        check = True
        while True:
            if check:
                dep = await anyio.to_thread.run_sync(get, deployment_id)
                if dep is not None and dep.status in TERMINAL:
                    seen_terminal += 1
                    sub.drain()
                    async for batch in catch_up():
                        yield batch
                else:
                    seen_terminal = 0
                if over(dep, seen_terminal):
                    return
            live = await sub.get(tick_s)
            check = live is None
            if live is None:
                continue
            arrived = [live, *sub.take_queued()]
            check = any(event.type == "eof" for event in arrived)
            ids = [event.id for event in arrived if event.id > last]
            contiguous = ids == list(range(last + 1, last + 1 + len(ids)))
            if sub.overflowed or not contiguous:
                sub.drain()  # a gap: what is missing (and what came) is read back, in order
                async for batch in catch_up():
                    yield batch
            else:
                kept = keep(arrived)
                if kept:
                    yield kept
