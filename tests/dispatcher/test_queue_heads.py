"""The queue's heads (each project's oldest queued deployment, the only claim candidates) stay
right through every way a deployment enters, leaves or moves in the queue: seeded random runs of
submit, claim, end, cancel-while-queued and requeue on both stores, each claim checked against a
plain model of the queue, and the heads checked in the table after every step. A head missed
would leave a deploy queued for ever; a head too many would break a project's order."""

from __future__ import annotations

import random

import pytest

from dispatcher.core.ports import Store
from dispatcher.model import Patch, Status
from runner.events import utc_now
from tests.dispatcher.test_store import Backend, backend, store  # noqa: F401 - fixtures

PROJECTS = ("alpha", "beta", "gamma", "delta")
MAX_RUNNING = 2


class Model:
    """The queue as a list in claim order, and what runs."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, str]] = []  # (deployment id, project) oldest first
        self.running: dict[str, str] = {}  # deployment id -> project
        self.ended: list[str] = []

    def next_claim(self) -> str | None:
        if len(self.running) >= MAX_RUNNING:
            return None
        busy = set(self.running.values())
        return next((d for d, p in self.queue if p not in busy), None)


def heads_in_table(backend: Backend) -> dict[str, set[str]]:  # noqa: F811
    true = "1" if backend.name == "sqlite" else "true"
    heads: dict[str, set[str]] = {}
    for project, deployment in backend.query(
        f"SELECT project_id, id FROM deployments WHERE status = 'queued' AND queue_head = {true}"
    ):
        heads.setdefault(project, set()).add(deployment)
    return heads


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_heads_and_claims_follow_the_model_through_random_runs(
    backend: Backend,  # noqa: F811
    store: Store,  # noqa: F811
    seed: int,
) -> None:
    rng = random.Random(seed)
    model = Model()
    for step in range(160):
        op = rng.choice(["submit", "submit", "claim", "claim", "end", "cancel", "requeue"])
        if op == "submit":
            project = rng.choice(PROJECTS)
            made, created = store.submit(project, project, "/nonexistent", None)
            assert created
            model.queue.append((made.id, project))
        elif op == "claim":
            expected = model.next_claim()
            claimed = store.claim("w", MAX_RUNNING)
            assert (claimed.id if claimed else None) == expected, f"seed {seed} step {step}"
            if claimed:
                model.queue.remove((claimed.id, claimed.project_id))
                model.running[claimed.id] = claimed.project_id
        elif op == "end" and model.running:
            done = rng.choice(sorted(model.running))
            status = rng.choice([Status.LIVE, Status.FAILED])
            store.update(done, Patch(status=status, finished_at=utc_now()))
            del model.running[done]
            if status is Status.FAILED:
                model.ended.append(done)
        elif op == "cancel" and model.queue:
            gone = rng.choice(model.queue)
            store.update(gone[0], Patch(status=Status.CANCELLED, finished_at=utc_now()))
            model.queue.remove(gone)
            model.ended.append(gone[0])
        elif op == "requeue" and model.ended:
            again = model.ended.pop(rng.randrange(len(model.ended)))
            requeued = store.requeue(again)
            model.queue.append((again, requeued.project_id))  # the back of the queue
        oldest: dict[str, str] = {}
        for deployment, project in model.queue:
            oldest.setdefault(project, deployment)
        assert heads_in_table(backend) == {p: {d} for p, d in oldest.items()}, (
            f"seed {seed} step {step} after {op}"
        )
    while model.queue or model.running:  # and it drains: nothing was left behind a lost head
        for done in sorted(model.running):
            store.update(done, Patch(status=Status.LIVE, finished_at=utc_now()))
        model.running.clear()
        while (claimed := store.claim("w", MAX_RUNNING)) is not None:
            assert claimed.id == model.next_claim()
            model.queue.remove((claimed.id, claimed.project_id))
            model.running[claimed.id] = claimed.project_id
    assert heads_in_table(backend) == {}


def test_the_migration_marks_the_heads_of_a_queue_made_before_it(
    backend: Backend,  # noqa: F811
) -> None:
    """A store migrated up to 0003 with deploys queued, then to 0004: every head is marked."""
    opened = backend.open()
    opened.migrate()
    ids = [opened.submit(p, p, "/nonexistent", None)[0].id for p in ("a", "b", "a", "c", "b")]
    false = "0" if backend.name == "sqlite" else "false"
    for statement in (
        f"UPDATE deployments SET queue_head = {false}",
        "DELETE FROM schema_migrations WHERE version = 4",
        "DROP INDEX deployments_queue_heads",
        "DROP INDEX deployments_project_queue",
        "DROP INDEX deployments_project_head",
        "ALTER TABLE deployments DROP COLUMN queue_head",
    ):
        backend.query(statement)
    assert "queue_head" not in backend.columns("deployments")
    again = backend.open()
    again.migrate()
    assert heads_in_table(backend) == {"a": {ids[0]}, "b": {ids[1]}, "c": {ids[3]}}
    claimed = [again.claim("w", 5) for _ in range(3)]
    assert [d.id if d else None for d in claimed] == [ids[0], ids[1], ids[3]]
