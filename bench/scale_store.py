"""bench/scale.py, the store's parts: ingest rate through the public Store API, and claim
latency against the depth of the queue. Both on SQLite and PostgreSQL, each on a fresh store.

- Ingest: runner-shaped lines (bench/dispatch.py's `runner_lines`: the runner's own
  EventWriter) into one deployment, two ways: `Store.append_events` in batches of 200 (the
  store alone: whatever it does inside, e.g. COPY on PostgreSQL, is what is measured), and the
  whole `Ingestor` (parse + fold + batched append). Median of `rounds` runs, events/s.
- Claim: `depth` deployments of distinct projects queued, then claimed one at a time until the
  queue is empty (each claimed one is then ended, untimed, so the running count stays 0): the
  latency of each claim against the depth it was taken at, in tenths of the queue; flat means
  the last tenth's median near the first's. The claim order is checked (oldest first).
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from dispatch import ingest_rate, new_deployment, runner_lines  # bench/dispatch.py

from dispatcher.core.ports import NewEvent, Store
from dispatcher.model import Patch, Status
from runner.events import parse_event, utc_now


def store_events(lines: list[str]) -> list[NewEvent]:
    out = []
    for line in lines:
        event = parse_event(line)
        out.append(NewEvent(1, event.type.value, event.ts, dict(event.payload), event.seq))
    return out


def append_rate(store: Store, events: list[NewEvent], rounds: int, batch: int = 200) -> float:
    rates = []
    for _ in range(rounds):
        dep = new_deployment(store, "append")
        start = time.perf_counter()
        stored = 0
        for i in range(0, len(events), batch):
            stored += len(store.append_events(dep.id, events[i : i + batch]))
        elapsed = time.perf_counter() - start
        if stored != len(events):
            raise SystemExit(f"stored {stored} of {len(events)} events")
        rates.append(len(events) / elapsed)
    return statistics.median(rates)


def ingest_part(store: Store, count: int, rounds: int) -> dict[str, float]:
    lines = runner_lines(count)
    return {
        "append_events_per_s": append_rate(store, store_events(lines), rounds),
        "ingestor_events_per_s": ingest_rate(store, lines, rounds),
    }


def claim_part(store: Store, depth: int) -> dict[str, Any]:
    while (left := store.claim("bench", 1_000_000)) is not None:  # the ingest part's, untimed
        store.update(left.id, Patch(status=Status.LIVE, finished_at=utc_now()))
    tag = uuid.uuid4().hex[:8]
    submitted = []
    for i in range(depth):
        dep, _ = store.submit(f"q-{tag}-{i:05d}", f"q-{tag}-{i:05d}", "/nonexistent", None)
        submitted.append(dep.id)
    latencies: list[float] = []
    claimed: list[str] = []
    while True:
        start = time.perf_counter()
        dep = store.claim("bench", 1_000_000)
        elapsed = time.perf_counter() - start
        if dep is None:
            break
        latencies.append(elapsed)
        claimed.append(dep.id)
        store.update(dep.id, Patch(status=Status.LIVE, finished_at=utc_now()))
    tenth = max(1, depth // 10)
    by_tenth = [
        statistics.median(latencies[i : i + tenth]) * 1e3 for i in range(0, len(latencies), tenth)
    ]
    return {
        "blocked": blocked_claims(store, depth),
        "depth": depth,
        "claimed": len(claimed),
        "in_order": claimed == submitted,
        "p50_ms_by_tenth": by_tenth,  # first: queue full (depth .. 0.9 depth); last: nearly empty
        "p50_ms": statistics.median(latencies) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "full_over_empty": by_tenth[0] / by_tenth[-1],
    }


def blocked_claims(store: Store, depth: int, samples: int = 30) -> dict[int, float]:
    """Claim latency (p50 ms) when `k` queued deployments ahead of the claimable one belong to
    a project that runs (the claim must pass over them): k = 0, depth/4, depth/2, depth."""
    tag = uuid.uuid4().hex[:8]
    busy, _ = store.submit(f"busy-{tag}", f"busy-{tag}", "/nonexistent", None)
    running = store.claim("bench", 1_000_000)
    if running is None or running.id != busy.id:
        raise SystemExit("the queue was not empty before the blocked-claim part")
    out: dict[int, float] = {}
    queued = 0
    for k in (0, depth // 4, depth // 2, depth):
        while queued < k:  # more deployments of the running project, waiting behind it
            store.submit(f"busy-{tag}", f"busy-{tag}", "/nonexistent", None)
            queued += 1
        times = []
        for i in range(samples):
            free, _ = store.submit(f"free-{tag}-{k}-{i}", f"free-{tag}", "/nonexistent", None)
            start = time.perf_counter()
            got = store.claim("bench", 1_000_000)
            times.append(time.perf_counter() - start)
            if got is None or got.id != free.id:
                raise SystemExit(f"claimed {got and got.id}, expected {free.id}")
            store.update(got.id, Patch(status=Status.LIVE, finished_at=utc_now()))
        out[k] = statistics.median(times) * 1e3
    store.update(busy.id, Patch(status=Status.LIVE, finished_at=utc_now()))
    while (left := store.claim("bench", 1_000_000)) is not None:
        store.update(left.id, Patch(status=Status.LIVE, finished_at=utc_now()))
    return out
