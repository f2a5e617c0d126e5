"""The checkpoints travel one way: runner events → the store → the next attempt's `--resume`
file, in the runner's own format (read back here with the runner's own reader)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from dispatcher.core.attempts import build_spec
from dispatcher.core.deployments import Deployments
from dispatcher.core.ingest import Ingestor
from dispatcher.core.ports import Store
from dispatcher.model import Patch, Status
from runner.checkpoints import SEALED_DB_PASSWORD, Checkpoints
from runner.events import VERSION, Event, EventType
from runner.masking import Masker
from tests.dispatcher.conftest import local_settings, migrated_store


def runner_line(seq: int, kind: EventType, **payload: object) -> str:
    return Event(VERSION, kind, "d", seq, "2026-01-01T00:00:00.000Z", dict(payload)).to_json()


def resume_values(tmp_path: Path, text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    path = tmp_path / "resume.jsonl"
    path.write_text(text)
    return Checkpoints.from_events_file(path).snapshot()


def test_a_new_attempt_and_a_redeploy_start_from_the_stored_checkpoints(tmp_path: Path) -> None:
    settings = local_settings(tmp_path, tmp_path / "state")
    store: Store = migrated_store(settings)
    try:
        store.submit("p1", "shop", str(tmp_path), None)
        first = store.claim("w", 4)
        assert first is not None
        front = Deployments(store, builds_root=tmp_path)
        spec = build_spec(settings, first, tmp_path, front.checkpoints(first))
        assert spec.resume_events is None  # nothing kept yet

        # Attempt 1 reports checkpoints among many other lines (more than one page of events).
        ingest = Ingestor(
            partial(front.record, first.id),
            first.attempt,
            Masker(),
            on_change=lambda changes: front.apply(first, changes) and None,
        )
        lines = [runner_line(1, EventType.CHECKPOINT, key="github.repo", value="acme/shop")]
        lines += [
            runner_line(i, EventType.LOG, level="info", message=f"line {i}")
            for i in range(2, 10_050)
        ]
        lines.append(runner_line(10_050, EventType.CHECKPOINT, key="supabase.ref", value="abc"))
        lines.append(runner_line(10_051, EventType.CHECKPOINT, key=SEALED_DB_PASSWORD, value="s1"))
        lines.append(runner_line(10_052, EventType.CHECKPOINT, key="github.repo", value="acme/x"))
        for line in lines:
            ingest.line(line)
        ingest.flush()
        assert store.get_sealed("p1") == {SEALED_DB_PASSWORD: "s1"}  # kept per project

        store.update(first.id, Patch(status=Status.FAILED))
        store.requeue(first.id)
        second = store.claim("w", 4)
        assert second is not None and second.attempt == 2
        spec = build_spec(settings, second, tmp_path, front.checkpoints(second))
        assert resume_values(tmp_path, spec.resume_events) == {
            SEALED_DB_PASSWORD: "s1",
            "github.repo": "acme/x",  # the later one wins
            "supabase.ref": "abc",
        }
        assert not any("SEALED" in name for name in (*spec.env, *spec.secrets))

        # A later deploy of the same app gets only the project's sealed password.
        store.update(second.id, Patch(status=Status.LIVE))
        store.submit("p1", "shop", str(tmp_path), None)
        redeploy = store.claim("w", 4)
        assert redeploy is not None and redeploy.id != first.id
        spec = build_spec(settings, redeploy, tmp_path, front.checkpoints(redeploy))
        assert resume_values(tmp_path, spec.resume_events) == {SEALED_DB_PASSWORD: "s1"}

        # A teardown resumes nothing.
        store.update(redeploy.id, Patch(status=Status.LIVE))
        store.submit("p1", "shop", str(tmp_path), None, action="teardown")
        teardown = store.claim("w", 4)
        assert teardown is not None and teardown.action == "teardown"
        assert build_spec(settings, teardown, tmp_path, {}).resume_events is None
    finally:
        store.close()
