"""A runner whose last output went with its backend (issue 13's Docker engine SIGKILL case:
the engine down when the runner wrote `result` and `eof` keeps no log of them, and the runner
exits 0). The attempt met the outage, so it says the output was lost with the backend and that
a retry resumes — not a bare "exited 0 without a final event". A launcher of the test's own
plays the backend: its stream fails once as unavailable, then gives the output without its
end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from dispatcher import settings as dispatcher_settings
from dispatcher.core.attempts import Attempt
from dispatcher.launchers.base import Exit, Handle, Launcher, RunSpec
from dispatcher.model import Status
from dispatcher.store.open import open_store
from runner.events import VERSION, Event, EventType
from runner.masking import Masker


class EngineGone(ConnectionError):
    pass


def line(seq: int, kind: EventType, **payload: object) -> str:
    return Event(VERSION, kind, "d", seq, "2026-01-01T00:00:00.000Z", dict(payload)).to_json()


class LostTail(Launcher):
    """Output up to a step, the backend gone once, then the same output: no result, no eof."""

    name = "test"
    backend = "test engine"

    def __init__(self) -> None:
        self.streams = 0

    def unavailable(self, error: BaseException) -> str | None:
        return str(error) if isinstance(error, EngineGone) else None

    def launch(self, spec: RunSpec) -> Handle:
        return Handle("test", spec.deployment_id, spec.attempt, "box")

    def stream(self, handle: Handle) -> Iterator[str]:
        self.streams += 1
        yield line(1, EventType.STEP_STARTED, step="prepare")
        yield line(2, EventType.CHECKPOINT, key="github.repo", value="acme/shop")
        if self.streams == 1:
            raise EngineGone("the test engine went away")

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


def test_output_lost_with_the_backend_is_named_and_a_retry_is_offered(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    settings = dispatcher_settings.load(
        {
            "FORGE_HOOK_SECRET": "a-hook-secret-of-32-characters!!",
            "FORGE_BUILDS_ROOT": str(tmp_path),
            "FORGE_STATE_DIR": str(tmp_path / "state"),
        }
    )
    store = open_store(settings.database_url)
    store.migrate()
    try:
        store.submit("p1", "shop", str(tmp_path / "shop"), None)
        claimed = store.claim("w", 4)
        assert claimed is not None
        launcher = LostTail()
        attempt = Attempt(
            settings, store, launcher, claimed, Masker(), lambda e: None, lambda d: None
        )
        done = attempt.run()
        assert launcher.streams >= 2  # read again once the backend answered
        assert done.status is Status.FAILED
        assert done.error is not None
        assert "the test engine went away for" in done.error, done.error
        assert "last output was lost with it" in done.error
        assert "exited 0 without a final event" in done.error  # what the dispatcher saw
        assert "retry resumes from its checkpoints" in done.error
        notes = [e.payload for e in store.events(claimed.id) if e.type == "log"]
        assert any(n.get("source") == "backend-outage" for n in notes), notes
    finally:
        store.close()
