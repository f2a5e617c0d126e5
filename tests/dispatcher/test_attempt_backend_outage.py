"""A runner's output that its backend lost (issue 13's Docker engine SIGKILL cases). The engine
reads a container's output in chunks and writes the log line by line: killed between the two,
it loses one line in the middle of a deploy, or the runner's last lines (`result`, `eof`) while
the runner exits 0. The Docker launcher keeps the runner's own copy of its events apart from
the engine (`recorded`); after the outage the attempt reads it first, so nothing is missing.
Without a copy, the attempt says the output was lost with the backend and that a retry resumes
— not a bare "exited 0 without a final event". A launcher of the test's own plays the backend:
its stream fails once as unavailable, then gives the output with what the engine lost cut out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec, Store
from dispatcher.core.service import Dispatcher
from dispatcher.model import Deployment, Status
from runner.events import VERSION, Event, EventType
from tests.dispatcher.conftest import local_settings, migrated_store


class EngineGone(ConnectionError):
    pass


def line(seq: int, kind: EventType, **payload: object) -> str:
    return Event(VERSION, kind, "d", seq, "2026-01-01T00:00:00.000Z", dict(payload)).to_json()


class LostOutput(Launcher):
    """`read` up to the outage, the backend gone once, then `again` (what the engine's log
    kept); `copy` is the runner's own copy of its events, when the launcher has one."""

    name = "test"
    backend = "test engine"

    def __init__(self, read: list[str], again: list[str], copy: list[str] | None = None) -> None:
        self.read, self.again, self.copy = read, again, copy
        self.streams = 0

    def unavailable(self, error: BaseException) -> str | None:
        return str(error) if isinstance(error, EngineGone) else None

    def launch(self, spec: RunSpec) -> Handle:
        return Handle("test", spec.deployment_id, spec.attempt, "box")

    def stream(self, handle: Handle) -> Iterator[str]:
        self.streams += 1
        if self.streams == 1:
            yield from self.read
            raise EngineGone("the test engine went away")
        yield from self.again

    def recorded(self, handle: Handle) -> list[str]:
        return list(self.copy or [])

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        return Exit(0)  # the runner finished; what it wrote last is gone

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        return ""

    def terminate(self, handle: Handle, grace_s: float) -> None:
        pass

    def remove(self, handle: Handle) -> None:
        pass

    def running(self) -> list[Handle]:
        return []

    def health(self) -> str | None:
        return None


FIRST = [
    line(1, EventType.STEP_STARTED, step="prepare"),
    line(2, EventType.CHECKPOINT, key="github.repo", value="acme/shop"),
]
MIDDLE = line(3, EventType.STEP_PROGRESS, step="supabase.healthy", message="ACTIVE_HEALTHY")
END = [
    line(4, EventType.RESULT, outcome="live", urls={"app": "https://shop.example"}),
    line(5, EventType.EOF, outcome="live", exit_code=0),
]


def run_attempt(tmp_path: Path, launcher: Launcher) -> tuple[Store, Deployment]:
    (tmp_path / "shop").mkdir()
    settings = local_settings(tmp_path, tmp_path / "state")
    store = migrated_store(settings)
    store.submit("p1", "shop", str(tmp_path / "shop"), None)
    claimed = store.claim("w", 4)
    assert claimed is not None
    return store, Dispatcher(settings, store, launcher).workers.run(claimed, slot=False)


def runner_seqs(store: Store, deployment_id: str) -> list[int]:
    return [e.runner_seq for e in store.events(deployment_id) if e.runner_seq is not None]


def test_a_line_the_engine_lost_mid_deploy_is_read_from_the_runners_copy(tmp_path: Path) -> None:
    launcher = LostOutput(FIRST, [*FIRST, *END], copy=[*FIRST, MIDDLE])  # 3 never reached the log
    store, done = run_attempt(tmp_path, launcher)
    try:
        assert launcher.streams == 2
        assert runner_seqs(store, done.id) == [1, 2, 3, 4, 5]  # each once, in order
        assert done.status is Status.LIVE, done.error
    finally:
        store.close()


def test_a_result_the_engine_lost_is_read_from_the_runners_copy(tmp_path: Path) -> None:
    launcher = LostOutput(FIRST, [*FIRST, MIDDLE], copy=[*FIRST, MIDDLE, *END])
    store, done = run_attempt(tmp_path, launcher)
    try:
        assert runner_seqs(store, done.id) == [1, 2, 3, 4, 5]
        assert done.status is Status.LIVE, done.error
        assert done.app_url == "https://shop.example"
    finally:
        store.close()


def test_output_lost_with_the_backend_is_named_and_a_retry_is_offered(tmp_path: Path) -> None:
    launcher = LostOutput(FIRST, FIRST)  # no copy: the runner finished, its last lines are gone
    store, done = run_attempt(tmp_path, launcher)
    try:
        assert launcher.streams >= 2  # read again once the backend answered
        assert done.status is Status.FAILED
        assert done.error is not None
        assert "the test engine went away for" in done.error, done.error
        assert "last output was lost with it" in done.error
        assert "exited 0 without a final event" in done.error  # what the dispatcher saw
        assert "retry resumes from its checkpoints" in done.error
        notes = [e.payload for e in store.events(done.id) if e.type == "log"]
        assert any(n.get("source") == "backend-outage" for n in notes), notes
    finally:
        store.close()
