"""SSE fan-out to many watchers of one deployment: each watcher gets every stored event exactly
once and in id order — those stored before it came (the backlog), those published while it
reads the backlog, and the live ones — also when its queue overflows and it reads the missed
ones back from the store. The real core: a SQLite store, the Ingestor writing a runner's lines
from a thread as an attempt does, the EventHub and `follow` (what the SSE endpoint serves).
(The store -> watcher delay at 500 watchers is bench/scale.py's part 3; no timing here.)"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from dispatcher.core.deployments import Deployments
from dispatcher.core.hub import EventHub, follow
from dispatcher.core.ingest import Ingestor
from dispatcher.core.ports import Store
from dispatcher.model import Patch, Status
from dispatcher.store.open import open_store
from runner.events import EventType, EventWriter, utc_now
from runner.masking import Masker

WATCHERS = 300
LINES = 600


def runner_stdout(deployment_id: str) -> list[str]:
    out = io.StringIO()
    writer = EventWriter(out, deployment_id, Masker())
    for i in range(LINES):
        if i % 100 == 0:
            writer.emit(EventType.STEP_STARTED, step=f"step-{i // 100}")
        else:
            writer.emit(EventType.LOG, level="info", message=f"line {i}", source="bench")
    writer.emit(EventType.EOF, outcome="live")
    return out.getvalue().splitlines()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    opened.migrate()
    yield opened
    opened.close()


async def watch(store: Store, hub: EventHub, deployment_id: str) -> list[int]:
    return [
        event.id
        async for event in follow(
            store, lambda: hub.subscribe(deployment_id), deployment_id, 0, tick_s=0.05
        )
    ]


@pytest.mark.parametrize("queue_size", [10_000, 16], ids=["live", "overflowing"])
def test_every_watcher_gets_every_event_once(store: Store, queue_size: int) -> None:
    hub = EventHub(queue_size=queue_size)
    dep, _ = store.submit("fan", "fan", "/nonexistent", None)
    running = store.claim("w", 1)
    assert running is not None and running.id == dep.id
    lines = runner_stdout(dep.id)
    front = Deployments(store, builds_root=Path("/nonexistent"), hub=hub)
    ingest = Ingestor(partial(front.record, dep.id), running.attempt, Masker(), batch=7)
    half_stored = threading.Event()

    def runner() -> None:  # as Attempt.run: lines in, batches stored and published
        for i, line in enumerate(lines):
            ingest.line(line)
            if i == len(lines) // 2:
                ingest.flush()
                half_stored.set()
        ingest.flush()
        store.update(dep.id, Patch(status=Status.LIVE, finished_at=utc_now()))

    async def main() -> list[list[int]]:
        early = [asyncio.create_task(watch(store, hub, dep.id)) for _ in range(WATCHERS // 2)]
        await asyncio.sleep(0.1)  # the early half subscribed before the first event
        thread = threading.Thread(target=runner)
        thread.start()
        await asyncio.to_thread(half_stored.wait)
        late = [asyncio.create_task(watch(store, hub, dep.id)) for _ in range(WATCHERS // 2)]
        got = await asyncio.wait_for(asyncio.gather(*early, *late), timeout=300)
        await asyncio.to_thread(thread.join)
        return got

    got = asyncio.run(main())
    stored = [e.id for e in store.events(dep.id)]
    assert len(stored) == len(lines)
    assert stored == list(range(1, len(lines) + 1))
    assert len(got) == WATCHERS
    for ids in got:
        assert ids == stored  # every event, once, in order
    assert hub.subscribers(dep.id) == 0  # every watcher unsubscribed at its end
