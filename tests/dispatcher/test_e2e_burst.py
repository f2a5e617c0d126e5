"""A burst against a real dispatcher (process launcher, SQLite, FORGE_MAX_CONCURRENT=4) and a
zero-latency sandbox (time scale 0): REQUESTS signed requests for PROJECTS projects, sent from
16 threads at once, each with its own Idempotency-Key except some that repeat an earlier
request exactly (issue 5, "What it must show" 3).

- every request is answered: 202 for a new key, 200 for a repeated one, the same deployment for
  the same key, one 202 per key;
- every accepted deployment reaches a terminal state (live: nothing here makes one fail);
- never two running deploys of one project: the store is sampled while the burst runs (and
  never more than 4 run), and afterwards the intervals of each project's deployments (the rows'
  started/finished and their first/last event) do not overlap;
- no duplicate resource: one repo, one Supabase project, one Vercel project per app name.

Provider budgets: the burst runs ~80 deploys a minute. Vercel's budget of 100 deployments a
minute per token is kept, and the runners honour it (FORGE_BACKOFF_SCALE=1 here: a 429 waits
for the window's `error.limit.reset` instead of the test knobs' thousandth of it, which would
give up after 8 quick tries). The sandbox's Supabase Management API budget (120 calls a minute
per token, as the real one) is lifted: each deploy spends about ten calls, so it alone would
stretch the burst over a quarter of an hour, and what is under test is the dispatcher's queue.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dispatcher.model import TERMINAL, Status
from tests.dispatcher.conftest import RunningDispatcher
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

REQUESTS = 200
PROJECTS = 50
REPEAT_EVERY = 8  # every 8th request (after the first round) repeats the one 50 before it
CONCURRENCY = 4


class Sampler:
    """Reads the store's running deployments every few milliseconds while the burst runs."""

    def __init__(self, e2e: RunningDispatcher) -> None:
        self.e2e = e2e
        self.samples = 0
        self.most = 0
        self.doubles: list[list[str]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.01):
                running = [d.project_id for d in self.e2e.store.running()]
                self.samples += 1
                self.most = max(self.most, len(running))
                twice = sorted(p for p, n in Counter(running).items() if n > 1)
                if twice:
                    self.doubles.append(twice)
        except BaseException as e:  # reported by the test
            self.errors.append(e)


def plan(unique: str) -> list[tuple[str, str]]:
    """(project, Idempotency-Key) of each request, in sending order."""
    sent: list[tuple[str, str]] = []
    for i in range(REQUESTS):
        project = f"bu{unique[:6]}-{i % PROJECTS}"
        if i >= PROJECTS and i % REPEAT_EVERY == 0:
            sent.append(sent[i - PROJECTS])  # the same request again: same project, same key
        else:
            sent.append((project, f"{unique}-{i}"))
    return sent


def assert_apart(intervals: dict[str, list[tuple[str, str]]], what: str) -> None:
    """Per project, each interval starts at or after the previous one ended."""
    for project, spans in intervals.items():
        spans = sorted(spans)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{what}: two deploys of {project} overlap: {spans}"


@pytest.mark.clis
@pytest.mark.postgres
def test_a_burst_of_signed_requests_is_queued_one_deploy_per_project_at_a_time(
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    e2e = start_dispatcher(FORGE_MAX_CONCURRENT=str(CONCURRENCY), FORGE_BACKOFF_SCALE="1")
    sandbox.set_time_scale(0)
    sandbox.admin("PUT", "supabase/rate-limit", {"limit": 1_000_000}).raise_for_status()
    try:
        requests_ = plan(unique)
        for project, _ in requests_:
            e2e.build(project)
        started = time.monotonic()
        with Sampler(e2e) as sampler:
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda r: e2e.submit(r[0], r[0], r[1]), requests_))
            answered = time.monotonic() - started
            ids = {a.json()["id"] for a in answers if a.status_code in (200, 202)}
            deadline = time.monotonic() + 600
            while any(
                e2e.store.get(i).status not in TERMINAL  # type: ignore[union-attr]
                for i in ids
            ):
                assert time.monotonic() < deadline, "the burst did not drain in 10 minutes"
                time.sleep(0.5)
        drained = time.monotonic() - started
    finally:
        sandbox.admin("DELETE", "supabase/rate-limit").raise_for_status()
        sandbox.admin("PUT", "supabase/rate-limit", {"limit": 120}).raise_for_status()

    # Every request answered; one deployment per key, one 202 per key.
    assert [a.status_code for a in answers if a.status_code not in (200, 202)] == []
    by_key: dict[str, list[Any]] = defaultdict(list)
    for (_, key), answer in zip(requests_, answers, strict=True):
        by_key[key].append(answer)
    for key, replies in by_key.items():
        assert len({r.json()["id"] for r in replies}) == 1, key
        assert sorted(r.status_code for r in replies) == [200] * (len(replies) - 1) + [202], key
    assert len(ids) == len(by_key) == REQUESTS - sum(len(r) - 1 for r in by_key.values())

    # Every accepted deployment ended, live.
    deployments = [e2e.store.get(i) for i in ids]
    statuses = Counter(d.status for d in deployments if d is not None)
    errors = Counter(d.error for d in deployments if d is not None and d.error)
    assert statuses == {Status.LIVE: len(ids)}, (statuses, errors)

    # Never two running deploys of one project, never more than the limit.
    assert not sampler.errors, sampler.errors
    assert sampler.samples > 10 and sampler.doubles == []
    assert 1 < sampler.most <= CONCURRENCY, sampler.most
    rows: dict[str, list[tuple[str, str]]] = defaultdict(list)
    spans: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for dep in deployments:
        assert dep is not None and dep.started_at and dep.finished_at and dep.attempt == 1
        rows[dep.project_id].append((dep.started_at, dep.finished_at))
        events = e2e.store.events(dep.id)
        runner_support.CAPTURED.append(json.dumps([e.public() for e in events]))
        assert events[0].type == "status" and events[-1].type == "status"
        spans[dep.project_id].append((events[0].ts, events[-1].ts))
    assert_apart(rows, "started_at/finished_at")
    assert_apart(spans, "first/last event")
    assert len(rows) == PROJECTS

    # One repo, one Supabase project, one Vercel project per app.
    res = sandbox.resources()
    names = {f"bu{unique[:6]}-{i}" for i in range(PROJECTS)}
    repos = Counter(r["name"] for r in res["github"]["repos"] if r["name"] in names)
    supabase = Counter(
        p["name"].removeprefix("forge-")
        for p in res["supabase"]["projects"]
        if p["name"].removeprefix("forge-") in names
    )
    vercel = Counter(p["name"] for p in res["vercel"]["projects"] if p["name"] in names)
    for made in (repos, supabase, vercel):
        assert made == dict.fromkeys(names, 1), made
    with capsys.disabled():  # the measurement, printed (not asserted)
        print(
            f"\nburst: {REQUESTS} requests, {len(ids)} deployments of {PROJECTS} projects, "
            f"{CONCURRENCY} at a time: answered in {answered:.1f} s, drained in {drained:.1f} s"
        )
