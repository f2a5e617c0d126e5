"""The core tier, its state changes: each command of the front door (`Deployments`) and each
change an attempt makes through it, against a real SQLite file, a fake clock and a fake
launcher; no PostgreSQL, sandbox or runner process. Every change is told to the listeners.
(The endings: tests/dispatcher/test_core_endings.py.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from dispatcher.core.builds import BuildDirError
from dispatcher.core.errors import Conflict, Refused, StoreUnavailable, UnknownDeployment
from dispatcher.core.ports import Exit, NewEvent
from dispatcher.model import Status, StoredEvent
from dispatcher.store.sqlite import SQLiteStore
from runner.checkpoints import SEALED_DB_PASSWORD, Checkpoints
from runner.events import EventType
from tests.support.core import TOKEN, CoreWorld, Run, line, runner_lines

pytestmark = pytest.mark.core


class Woken:
    """The front door's queue, its wake-ups counted."""

    def __init__(self, world: CoreWorld) -> None:
        self.inner = world.dispatcher.workers
        self.count = 0

    def wake(self) -> None:
        self.count += 1
        self.inner.wake()

    def stop_running(self, deployment_id: str) -> None:
        self.inner.stop_running(deployment_id)


@pytest.fixture
def woken(world: CoreWorld) -> Woken:
    spy = Woken(world)
    world.front.queue = spy
    return spy


# -- submit ------------------------------------------------------------------------------------


def test_submit_queues_tells_and_wakes_once_per_key(world: CoreWorld, woken: Woken) -> None:
    dep, created = world.front.submit("p1", "shop", "shop", "key-1")
    assert created and dep.status is Status.QUEUED and dep.attempt == 0
    assert dep.build_dir == str(world.builds / "shop")
    assert world.statuses(dep.id) == [Status.QUEUED] and woken.count == 1
    again, created = world.front.submit("p1", "shop", "shop", "key-1")
    assert (again.id, created) == (dep.id, False)
    assert world.statuses(dep.id) == [Status.QUEUED] and woken.count == 1  # nothing changed
    with pytest.raises(Conflict):
        world.front.submit("p1", "other", "shop", "key-1")
    with pytest.raises(BuildDirError, match="outside the builds root"):
        world.front.submit("p2", "shop", "../elsewhere")
    assert [d.id for d in world.front.newest()] == [dep.id]  # nothing else was created


def test_the_exposure_policy_reaches_the_runner_as_its_environment(world: CoreWorld) -> None:
    """Issue 27's per-deploy policy: kept with the deployment, handed to its runner as
    FORGE_EXPOSURE_POLICY (over the dispatcher's own default); absent, the runner's default."""
    strict = world.submit(exposure_policy="fail")
    assert world.front.get(strict.id).exposure_policy == "fail"
    world.run_next()
    plain = world.submit()
    world.run_next()
    first, second = world.launcher.launched
    assert first.env["FORGE_EXPOSURE_POLICY"] == "fail"
    assert "FORGE_EXPOSURE_POLICY" not in second.env
    assert plain.exposure_policy is None
    with pytest.raises(ValueError, match="exposure_policy"):
        world.submit(exposure_policy="loud")


# -- claim, record, apply: an attempt's progress ---------------------------------------------------


def test_an_attempt_records_its_events_and_applies_what_they_say(world: CoreWorld) -> None:
    dep = world.submit()
    done = world.run_next()
    assert world.statuses(dep.id) == [Status.QUEUED, Status.RUNNING, Status.LIVE]
    events = world.front.events(dep.id)
    assert [e.runner_seq for e in events if e.runner_seq is not None] == [1, 2, 3, 4, 5]
    assert events[0].type == "status" and events[0].payload["status"] == "running"
    published = [e for e in world.hub.published if e.deployment_id == dep.id]
    assert published == events  # every stored event published live, once, in order
    assert done.step == "github.repo" and done.repo_url == "https://git.example/shop"
    assert world.store.get_sealed("p1") == {SEALED_DB_PASSWORD: "sealed-1"}
    spec = world.launcher.launched[0]
    assert spec.args == ("deploy", "--name", "shop") and spec.resume_events is None
    assert spec.secrets["GH_TOKEN"] == TOKEN and "GH_TOKEN" not in spec.env
    assert spec.env["FORGE_DEPLOY_ID"] == dep.id


def test_one_project_runs_one_deployment_at_a_time(world: CoreWorld) -> None:
    world.launcher.runs.append(Run([line(1, EventType.STEP_STARTED, step="x")], hold=True))
    first = world.submit()
    attempt = world.start_next()
    second = world.submit()
    assert world.dispatcher.workers.run_next() is None  # waits behind the running one
    world.front.cancel(first.id)
    attempt.join(30)
    assert world.run_next().id == second.id


# -- cancel, retry, teardown -----------------------------------------------------------------------


def test_the_refusal_policy_and_unknown_ids(world: CoreWorld) -> None:
    dep = world.submit()
    with pytest.raises(Refused) as not_retryable:
        world.front.retry(dep.id)
    assert not_retryable.value.code == "not_retryable"
    world.run_next()
    with pytest.raises(Refused) as not_cancellable:
        world.front.cancel(dep.id)
    assert not_cancellable.value.code == "not_cancellable"
    for action in (world.front.get, world.front.cancel, world.front.retry, world.front.teardown):
        with pytest.raises(UnknownDeployment):
            action("dep_000000000000000000000000")


def test_retry_queues_a_new_attempt_that_resumes(world: CoreWorld, woken: Woken) -> None:
    world.launcher.runs.append(Run(runner_lines("failed", "supabase: 500"), Exit(1)))
    dep = world.submit()
    world.run_next()
    again = world.front.retry(dep.id)
    assert (again.id, again.status, again.attempt, again.error) == (dep.id, Status.QUEUED, 1, None)
    assert world.statuses(dep.id)[-2:] == [Status.FAILED, Status.QUEUED] and woken.count == 2
    done = world.run_next()
    assert (done.status, done.attempt) == (Status.LIVE, 2)
    resume = world.launcher.launched[1].resume_events
    assert resume is not None
    path = world.builds / "resume.jsonl"
    path.write_text(resume)
    assert Checkpoints.from_events_file(path).snapshot() == {
        SEALED_DB_PASSWORD: "sealed-1",
        "github.repo_url": "https://git.example/shop",
    }


def test_teardown_queues_a_removal_of_the_project(world: CoreWorld, woken: Woken) -> None:
    dep = world.submit()
    world.run_next()
    removal = world.front.teardown(dep.id)
    assert removal.id != dep.id and (removal.action, removal.project_id) == ("teardown", "p1")
    assert world.statuses(removal.id) == [Status.QUEUED] and woken.count == 2
    world.launcher.runs.append(Run(runner_lines("live")))
    world.run_next()
    spec = world.launcher.launched[-1]
    assert spec.args == ("teardown", "--name", "shop") and spec.resume_events is None


# -- the store away --------------------------------------------------------------------------------


class FlakyStore(SQLiteStore):
    """An SQLite store whose next `fail` batches of events meet an outage."""

    fail = 0

    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("SQLite: its disk is full (test)")
        return super().append_events(deployment_id, events)


def test_an_attempt_waits_out_the_store_and_tells_of_it(tmp_path: Path) -> None:
    """The wait-out wraps the store once (`core.waiting`): the attempt's calls wait, each event
    is stored once, and the outage is told in the deployment's events."""
    store = FlakyStore(tmp_path / "dispatcher.db")
    world = CoreWorld(tmp_path, store=store)
    try:
        dep = world.submit()
        store.fail = 3
        done = world.run_next()
        assert done.status is Status.LIVE
        events = world.front.events(dep.id)
        assert [e.runner_seq for e in events if e.runner_seq is not None] == [1, 2, 3, 4, 5]
        notes = [e.payload for e in events if e.type == "log"]
        assert [n["source"] for n in notes] == ["store-outage"], notes
        assert "disk is full" in notes[0]["message"]
        assert world.dispatcher.workers.store_watch.outages == 1
    finally:
        world.close()


def test_a_request_meets_the_outage_at_once(tmp_path: Path) -> None:
    """The front door the web layer holds does not wait: its caller answers 503 at once."""
    store = FlakyStore(tmp_path / "dispatcher.db")
    world = CoreWorld(tmp_path, store=store)
    try:
        dep = world.submit()
        store.fail = 1
        with pytest.raises(StoreUnavailable):
            world.front.cancel(dep.id)  # a queued one ends at once: its status event meets it
        assert world.front.health() is None  # reads still answer
    finally:
        world.close()


# -- what the adapters read -----------------------------------------------------------------------


def test_the_reads_the_web_layer_makes(world: CoreWorld) -> None:
    dep = world.submit()
    assert world.front.health() is None
    assert world.front.count_by_status() == {"queued": 1}
    assert world.front.remember_signature("sha256=aa", 2e9)
    assert not world.front.remember_signature("sha256=aa", 2e9)  # a replay
    assert world.front.bundle_dir(dep.id, 1) is None  # not running
    world.launcher.runs.append(Run([line(1, EventType.STEP_STARTED, step="x")], hold=True))
    attempt = world.start_next()
    assert world.front.bundle_dir(dep.id, 1) == world.builds / "shop"
    assert world.front.bundle_dir(dep.id, 2) is None
    world.front.cancel(dep.id)
    attempt.join(30)
    world.store.close()
    assert (world.front.health() or "").startswith("unreachable: ")
