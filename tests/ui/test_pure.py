"""The pages' pure parts, without a browser: links and sessions (`dispatcher.ui.links`), the
timeline from events (`dispatcher.ui.timeline`), the list's order and queue positions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.ui import links, timeline, views

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def parts(url: str) -> tuple[str, str, str]:
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return q["next"], q["exp"], q["sig"]


def test_a_minted_link_checks_until_it_expires_and_not_with_another_key() -> None:
    url = links.mint(SECRET, "http://127.0.0.1:1", "/ui/deployments/dep_1", NOW)
    target, exp, sig = parts(url)
    assert links.check_link(SECRET, target, exp, sig, NOW + 10).target == target
    for secret, when, page, reason in (
        (SECRET, NOW + links.LINK_S + 1, target, "expired"),
        (b"t" * 32, NOW, target, "bad_signature"),
        (SECRET, NOW, "/ui/", "bad_signature"),
        (SECRET, NOW, "http://evil/", "bad_target"),
    ):
        with pytest.raises(links.LinkError) as refused:
            links.check_link(secret, page, exp, sig, when)
        assert refused.value.reason == reason
    with pytest.raises(links.LinkError):
        links.mint(SECRET, "http://x", "/elsewhere", NOW)


def test_a_session_and_its_csrf_token() -> None:
    cookie = links.new_session(SECRET, NOW)
    sid = links.session_id(SECRET, cookie, NOW + 60)
    links.check_csrf(SECRET, sid, links.csrf_token(SECRET, sid))
    for bad in (None, "", cookie + "0", cookie.replace(cookie[-1], "x"), "1.2.3"):
        with pytest.raises(links.LinkError):
            links.session_id(SECRET, bad, NOW)
    with pytest.raises(links.LinkError) as late:
        links.session_id(SECRET, cookie, NOW + links.SESSION_S + 1)
    assert late.value.reason == "expired"
    other = links.session_id(SECRET, links.new_session(SECRET, NOW), NOW)
    for token in (None, "", links.csrf_token(SECRET, other)):
        with pytest.raises(links.LinkError):
            links.check_csrf(SECRET, sid, token)


def dep(status: Status, created: str = "2026-01-01T00:00:00Z", **more: Any) -> Deployment:
    return Deployment(
        f"dep_{created[-9:-1].replace(':', '')}", "p", "p", "/b", status, 1, created, created,
        **more,
    )  # fmt: skip


def ev(i: int, kind: str, step: str, at: float, **payload: Any) -> StoredEvent:
    ts = f"2026-01-01T00:00:{at:06.3f}Z"
    return StoredEvent("dep_1", i, 1, kind, ts, {"step": step, **payload})


def test_the_timeline_shows_overlap_the_first_failure_and_stopped_steps() -> None:
    events = [
        ev(1, "step_started", "supabase.healthy", 1),
        ev(2, "step_started", "vercel.build", 2),
        ev(3, "step_failed", "vercel.build", 5, error="vercel 400: bad"),
        ev(4, "step_failed", "supabase.healthy", 6, error="cancelled"),
        ev(5, "step_started", "github.repo", 1),
        ev(6, "step_finished", "github.repo", 2, elapsed_s=1),
        ev(7, "step_started", "github.push", 2),
        ev(8, "step_finished", "github.push", 3, elapsed_s=1),
    ]
    tl = timeline.build(events, dep(Status.FAILED, finished_at="2026-01-01T00:00:07Z"), NOW)
    states = {ln.name: ln.state for ln in tl.lanes}
    assert states == {"github": "done", "supabase": "stopped", "vercel": "failed",
                      "health": "stopped"}  # fmt: skip
    assert (tl.failed_step, tl.failed_message) == ("vercel.build", "vercel 400: bad")
    vercel = next(ln for ln in tl.lanes if ln.name == "vercel").bars[0]
    supabase = next(ln for ln in tl.lanes if ln.name == "supabase").bars[0]
    assert supabase.start < vercel.start < (supabase.end or 0)  # overlapping on one axis
    svg = timeline.svg(tl)
    assert svg.count('class="bar ') == 4 and "stroke-dasharray" not in svg
    failure = views.failure(dep(Status.FAILED), tl)
    assert failure == ("vercel.build", "vercel 400: bad")


def test_a_running_step_is_a_dashed_bar_to_now() -> None:
    events = [ev(1, "step_started", "vercel.build", 1)]
    now = timeline.parse_ts("2026-01-01T00:00:09Z")
    tl = timeline.build(events, dep(Status.RUNNING), now)
    assert tl.end == now
    assert next(ln for ln in tl.lanes if ln.name == "vercel").state == "running"
    assert "stroke-dasharray" in timeline.svg(tl)


def test_the_list_puts_running_then_queued_in_order_with_positions_on_top() -> None:
    deps = [
        dep(Status.LIVE, "2026-01-01T00:00:05Z"),
        dep(Status.QUEUED, "2026-01-01T00:00:04Z"),
        dep(Status.QUEUED, "2026-01-01T00:00:02Z"),
        dep(Status.RUNNING, "2026-01-01T00:00:03Z"),
        dep(Status.FAILED, "2026-01-01T00:00:01Z"),
    ]
    flight, rest = views.rows(deps, None)
    assert [(r.dep.status.value, r.position) for r in flight] == [
        ("running", None), ("queued", 1), ("queued", 2)
    ]  # fmt: skip
    assert flight[1].dep.created_at < flight[2].dep.created_at
    # one project deploys one at a time: each queued one waits for the one ahead of it
    assert [r.waits_for.id if r.waits_for else None for r in flight] == [
        None, flight[0].dep.id, flight[1].dep.id
    ]  # fmt: skip
    other = replace(dep(Status.QUEUED, "2026-01-01T00:00:06Z"), project_id="q")
    assert views.rows([other, *deps], "queued")[0][-1].waits_for is None  # nothing ahead in q
    assert [r.dep.status.value for r in rest] == ["live", "failed"]
    assert views.rows(deps, "failed") == ([], [rest[1]])


def test_carriage_return_progress_collapses_to_its_last_state() -> None:
    line = StoredEvent("d", 1, 1, "log", "t", {"level": "info", "message": "up 1%\rup 50%\r"})
    assert views.line_text(line) == "up 50%"
    assert views.log_text([line]) == "t #1 a1 up 50%\n"
