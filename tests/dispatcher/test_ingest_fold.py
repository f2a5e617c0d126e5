"""The ingest fold is pure: (state, event) → (state, [typed change]); the state given is never
changed, and what an event means for the dashboard row is a `Patch`, a sealed value a `Sealed`."""

from __future__ import annotations

from dispatcher.core.status import Folded, Sealed, fold
from dispatcher.model import Patch
from runner.checkpoints import SEALED_DB_PASSWORD
from runner.events import EventType


def test_each_event_kind_folds_into_typed_changes() -> None:
    start = Folded()
    state, changes = fold(start, EventType.STEP_STARTED, {"step": "supabase.project"})
    assert start == Folded() and state.step == "supabase.project"
    assert changes == [Patch(step="supabase.project")]

    same, changes = fold(state, EventType.CHECKPOINT, {"key": "vercel.url", "value": "https://a"})
    assert same is state and changes == [Patch(app_url="https://a")]
    _, changes = fold(state, EventType.CHECKPOINT, {"key": SEALED_DB_PASSWORD, "value": "opaque"})
    assert changes == [Sealed(SEALED_DB_PASSWORD, "opaque")]
    _, changes = fold(state, EventType.CHECKPOINT, {"key": "supabase.ref", "value": "abc"})
    assert changes == []  # an id the runner keeps for itself: no column
    _, changes = fold(state, EventType.CHECKPOINT, {"key": "vercel.url", "value": 3})
    assert changes == []  # not a URL: ignored, not stored

    result = {"outcome": "live", "urls": {"app": "https://a", "repo": 7}, "health": {"ok": True}}
    after, changes = fold(state, EventType.RESULT, result)
    assert after.result == result and state.result is None
    assert changes == [Patch(app_url="https://a", health={"ok": True})]
    ended, changes = fold(after, EventType.EOF, {"outcome": "live", "exit_code": 0})
    assert ended.eof == {"outcome": "live", "exit_code": 0} and changes == []
    assert fold(ended, EventType.HEARTBEAT, {}) == (ended, [])


def test_a_patch_holds_only_what_was_set() -> None:
    assert Patch().fields() == {} and not Patch()
    assert Patch(error=None).fields() == {"error": None}  # None clears; unset leaves alone
    assert Patch(step="x", exit_code=0).fields() == {"step": "x", "exit_code": 0}
