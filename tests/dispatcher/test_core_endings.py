"""The core tier, its endings: every way a deployment ends goes through the one
`Deployments.conclude`, decided by the one pure `core.status.outcome`, so each leaves the same
marks: its `status` event last (stored and published live), the row's status, error, exit code
and finish time, and the listeners (the callbacks, the mirror) told. Real SQLite in a temporary
file, a fake clock, a fake launcher; no PostgreSQL, sandbox or runner process.

Before issue 26 the four copies of this ending disagreed: a deployment a restarted dispatcher
found without a runner ("lost") got a row but no `status` event, and no callback.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.core.ports import Exit, Handle
from dispatcher.core.status import (
    CancelledUnlaunched,
    DispatcherFailed,
    Ending,
    Folded,
    Outcome,
    RunnerEnded,
    RunnerGone,
    outcome,
)
from dispatcher.model import Deployment, Patch, Status
from runner.events import EventType
from tests.support.core import TOKEN, CoreWorld, Run, line, runner_lines

pytestmark = pytest.mark.core


def assert_concluded(world: CoreWorld, dep: Deployment, status: Status, error: str | None) -> None:
    """The marks of one ending, whichever way it came."""
    row = world.front.get(dep.id)
    assert row.status is status, (row.status, row.error)
    assert (error is None and row.error is None) or (error or "") in (row.error or ""), row.error
    assert row.finished_at == world.clock.iso()
    events = world.front.events(dep.id)
    last = events[-1]
    assert last.type == "status", [e.type for e in events[-3:]]
    assert last.payload == {"status": status.value, "error": row.error, "exit_code": row.exit_code}
    assert last.attempt == row.attempt
    endings = [e for e in events if e.type == "status" and e.payload["status"] != "running"]
    assert endings == [last], "ended once"
    assert last in world.hub.published, "the ending was published to the live followers"
    assert world.statuses(dep.id)[-1] is status, "the listeners were told"


# -- the pure decision ---------------------------------------------------------------------------


LIVE = Folded(result={"outcome": "live"}, eof={"outcome": "live", "exit_code": 0})
FAILED = Folded(result={"outcome": "failed", "error": "x 403"}, eof={"outcome": "failed"})
UNHEALTHY = Folded(eof={"outcome": "unhealthy"})
SIGTERM = Folded(result={"outcome": "cancelled", "error": "SIGTERM"}, eof={"outcome": "cancelled"})
NO_EOF = "the runner exited 1 without a final event"
GONE = "lost: the runner disappeared while the dispatcher was down"


FAIL, CANCEL = Status.FAILED, Status.CANCELLED


def ran(
    folded: Folded | None = None, code: int | None = 0, why: str | None = None, **seen: Any
) -> RunnerEnded:
    return RunnerEnded(folded or Folded(), Exit(code, why), **seen)


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (ran(LIVE), Outcome(Status.LIVE, None, 0)),
        (ran(FAILED, 1), Outcome(FAIL, "x 403", 1)),
        (ran(UNHEALTHY, 3), Outcome(Status.UNHEALTHY, None, 3)),
        (ran(code=143, cancelled=True), Outcome(CANCEL, "cancelled", 143)),
        (ran(code=None, timed_out="deadline"), Outcome(FAIL, "deadline")),
        (ran(code=137, why="oom-killed"), Outcome(FAIL, "the runner was OOM-killed", 137)),
        (ran(code=None, why="lost"), Outcome(FAIL, "lost: the runner is gone and left no result")),
        (ran(code=1), Outcome(FAIL, NO_EOF, 1)),
        (CancelledUnlaunched(queued=True), Outcome(CANCEL, "cancelled while queued")),
        (CancelledUnlaunched(queued=False), Outcome(CANCEL, "cancelled before it started")),
        (RunnerGone(), Outcome(FAIL, GONE)),
        (DispatcherFailed("boom"), Outcome(FAIL, "dispatcher error: boom")),
    ],
)
def test_every_ending_is_decided_by_the_one_pure_function(
    ending: Ending, expected: Outcome
) -> None:
    assert outcome(ending) == expected


def test_a_runners_end_is_told_with_what_happened_around_it() -> None:
    gone = (12.0, "no answer")
    sigterm = SIGTERM
    outside = outcome(RunnerEnded(sigterm, Exit(4)))
    assert outside.status is Status.FAILED and "stopped from outside the dispatcher (SIGTERM)" in (
        outside.error or ""
    )
    engine = outcome(RunnerEnded(sigterm, Exit(4), backend_outage=gone, backend="Docker engine"))
    assert (engine.error or "").startswith("the Docker engine went away for 12.0 s mid-deploy")
    lost = outcome(RunnerEnded(Folded(), Exit(0), backend_outage=gone, backend="Docker engine"))
    assert "last output was lost with it (the runner exited 0" in (lost.error or "")
    with pytest.raises(ValueError, match="terminal"):
        Outcome(Status.RUNNING)


# -- the runner's own end ------------------------------------------------------------------------


def test_a_runner_that_went_live(world: CoreWorld) -> None:
    dep = world.submit()
    done = world.run_next()
    assert_concluded(world, dep, Status.LIVE, None)
    assert (done.exit_code, done.app_url, done.repo_url) == (
        0,
        "https://shop.example",
        "https://git.example/shop",
    )
    assert world.statuses(dep.id) == [Status.QUEUED, Status.RUNNING, Status.LIVE]
    assert world.launcher.removed, "the runner was removed before the deployment ended"


def test_a_runner_that_failed_with_the_providers_message(world: CoreWorld) -> None:
    world.launcher.runs.append(Run(runner_lines("failed", "vercel: 403 forbidden"), Exit(1)))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.FAILED, "vercel: 403 forbidden")


def test_a_runner_that_ended_unhealthy(world: CoreWorld) -> None:
    world.launcher.runs.append(Run(runner_lines("unhealthy"), Exit(3)))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.UNHEALTHY, "unhealthy")


def test_a_runner_that_exited_without_its_eof(world: CoreWorld) -> None:
    lines = [line(1, EventType.STEP_STARTED, step="github.repo")]
    world.launcher.runs.append(Run(lines, Exit(1), stderr=f"Traceback: boom {TOKEN}"))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.FAILED, "the runner exited 1 without a final event")
    tail = [e.payload for e in world.front.events(dep.id) if e.type == "log"]
    assert tail and tail[-1]["source"] == "runner-stderr" and TOKEN not in str(tail)


def test_a_runner_killed_for_its_memory(world: CoreWorld) -> None:
    world.launcher.runs.append(Run([], Exit(137, "oom-killed")))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.FAILED, "OOM-killed")


def test_a_runner_stopped_from_outside(world: CoreWorld) -> None:
    """A SIGTERM nobody here sent: the runner says cancelled, the deployment failed."""
    lines = runner_lines("cancelled", "cancelled by SIGTERM")
    world.launcher.runs.append(Run(lines, Exit(4)))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.FAILED, "stopped from outside the dispatcher")


# -- stopped by the dispatcher ---------------------------------------------------------------------


def test_a_runner_past_its_deadline(world: CoreWorld) -> None:
    world.launcher.runs.append(Run([line(1, EventType.STEP_STARTED, step="x")], hold=True))
    dep = world.submit()
    attempt = world.start_next()
    world.clock.advance(61)  # the deadline is 60 s: the watchdog's next look stops it
    attempt.join(30)
    assert_concluded(world, dep, Status.FAILED, "deadline of 60 s exceeded")
    assert world.launcher.terminated


def test_a_silent_runner(world: CoreWorld) -> None:
    world.launcher.runs.append(Run([], hold=True))
    dep = world.submit()
    attempt = world.start_next()
    world.clock.advance(31)  # idle for longer than the 30 s allowed
    attempt.join(30)
    assert_concluded(world, dep, Status.FAILED, "idle: no output for 30 s")


def test_a_running_deployment_cancelled(world: CoreWorld) -> None:
    world.launcher.runs.append(Run([line(1, EventType.STEP_STARTED, step="x")], hold=True))
    dep = world.submit()
    attempt = world.start_next()
    flagged = world.front.cancel(dep.id)  # this replica's attempt: stopped at once
    assert flagged.cancel_requested and flagged.status is Status.RUNNING
    attempt.join(30)
    assert_concluded(world, dep, Status.CANCELLED, "cancelled")
    assert world.launcher.terminated


# -- ended with no runner --------------------------------------------------------------------------


def test_a_queued_deployment_cancelled(world: CoreWorld) -> None:
    dep = world.submit()
    done = world.front.cancel(dep.id)
    assert done.attempt == 0
    assert_concluded(world, dep, Status.CANCELLED, "cancelled while queued")
    assert world.dispatcher.workers.run_next() is None  # nothing left to claim


def test_a_deployment_claimed_with_its_cancel_requested(world: CoreWorld) -> None:
    dep = world.submit()
    world.store.update(dep.id, Patch(cancel_requested=True))  # a cancel racing the claim
    world.run_next()
    assert_concluded(world, dep, Status.CANCELLED, "cancelled before it started")
    assert world.launcher.launched == []


def test_the_dispatcher_failing_an_attempt(world: CoreWorld) -> None:
    world.launcher.runs.append(Run(launch_error=RuntimeError(f"cannot start {TOKEN}")))
    dep = world.submit()
    world.run_next()
    assert_concluded(world, dep, Status.FAILED, "dispatcher error: cannot start ***")
    assert TOKEN not in str(world.front.get(dep.id))


def test_a_runner_gone_while_the_dispatcher_was_down(world: CoreWorld) -> None:
    """Changed by issue 26 (the four endings agree now): reconcile concludes a deployment whose
    runner is gone like any other ending, with a `status` event, the live followers and the
    listeners told. Before, it wrote the row only."""
    dep = world.submit()
    claimed = world.store.claim("core", 4)  # an earlier dispatcher of this replica ran it
    assert claimed is not None and claimed.id == dep.id
    world.dispatcher.workers.reconcile()
    assert_concluded(world, dep, Status.FAILED, "lost: the runner disappeared")


def test_a_runner_that_ended_while_the_dispatcher_was_down(world: CoreWorld) -> None:
    """Re-attached at start: its stored events are not stored again, and it ends from its
    own eof."""
    dep = world.submit()
    claimed = world.store.claim("core", 4)
    assert claimed is not None
    world.launcher.adopt(Handle("fake", dep.id, 1, "box-0"), Run(runner_lines("live")))
    world.dispatcher.workers.reconcile()
    world.wait_ended(dep.id)
    assert_concluded(world, dep, Status.LIVE, None)
    seqs = [e.runner_seq for e in world.front.events(dep.id) if e.runner_seq is not None]
    assert seqs == [1, 2, 3, 4, 5]
