"""The queue with 1,000 deployments waiting: claims still take the oldest claimable first, skip
the ones whose project runs, respect the running limit, and drain it completely. (How long a
claim takes at this depth is bench/scale.py's part 5; no timing here.)"""

from __future__ import annotations

from dispatcher.core.ports import Store
from dispatcher.model import Patch, Status
from runner.events import utc_now
from tests.dispatcher.test_store import backend, store  # noqa: F401 - fixtures

DEPTH = 1_000
PROJECTS = 800  # deployments 800..999 are second deploys of projects 0..199


def _fill(queue: Store) -> list[str]:
    ids = []
    for i in range(DEPTH):
        project = f"p{i % PROJECTS:04d}"
        dep, created = queue.submit(project, project, "/nonexistent", None)
        assert created
        ids.append(dep.id)
    return ids


def _end(queue: Store, deployment_id: str) -> None:
    queue.update(deployment_id, Patch(status=Status.LIVE, finished_at=utc_now()))


def test_running_limit_holds_with_a_deep_queue(store: Store) -> None:  # noqa: F811
    ids = _fill(store)
    first = [store.claim("w", 5) for _ in range(5)]
    assert [d.id if d else None for d in first] == ids[:5]
    assert store.claim("w", 5) is None  # five run: the limit, with 995 still queued
    assert {d.id for d in store.running()} == set(ids[:5])


def test_claims_take_the_oldest_claimable_and_skip_running_projects(
    store: Store,  # noqa: F811
) -> None:
    ids = _fill(store)
    claimed = []
    while (dep := store.claim("w", DEPTH)) is not None:
        claimed.append(dep)
    # Every project's first deployment, oldest first; none of the 200 second deploys, each
    # waiting behind its project's running one (far down a queue of 1,000).
    assert [d.id for d in claimed] == ids[:PROJECTS]
    assert all(d.status is Status.RUNNING and d.attempt == 1 for d in claimed)
    assert len({d.project_id for d in claimed}) == PROJECTS

    for dep in claimed[:100]:  # projects 0..99 end: their second deploys become claimable
        _end(store, dep.id)
    second = []
    while (dep := store.claim("w", DEPTH)) is not None:
        second.append(dep.id)
    assert second == ids[PROJECTS : PROJECTS + 100]

    for dep in claimed[100:]:
        _end(store, dep.id)
    rest = []
    while (dep := store.claim("w", DEPTH)) is not None:
        rest.append(dep.id)
    assert rest == ids[PROJECTS + 100 :]
    assert {d.status for d in (store.get(i) for i in ids) if d} == {Status.RUNNING, Status.LIVE}
    assert sum(1 for i in ids if (d := store.get(i)) and d.status is Status.QUEUED) == 0
