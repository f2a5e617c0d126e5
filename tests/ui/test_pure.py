"""The pages' pure parts, without a browser: links and sessions (`dispatcher.ui.links`), the
timeline from events (`dispatcher.ui.timeline`), the list's order and queue positions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.ui import ansi, links, timeline, timeline_svg, views
from dispatcher.ui.scopes import Scope
from runner.events import DeploymentId

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def parts(url: str) -> tuple[str, str, str, str]:
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return q["scope"], q["exp"], q["nonce"], q["sig"]


DEP = Scope.deployment("dep_1")


def test_a_minted_link_is_ours_until_it_expires_and_unique() -> None:
    url = links.mint(SECRET, "http://127.0.0.1:1", DEP, NOW)
    scope, exp, nonce, sig = parts(url)
    link = links.check_link(SECRET, scope, exp, nonce, sig)
    assert link.scope == DEP and not link.expired(NOW + links.LINK_S)
    links.check_fresh(link, NOW + 10)
    assert link.expired(NOW + links.LINK_S + 1)
    with pytest.raises(links.LinkError) as late:
        links.check_fresh(link, NOW + links.LINK_S + 1)
    assert late.value.reason == "expired"
    # Two links for one page in one second differ (their nonces), and both check.
    again = links.mint(SECRET, "http://127.0.0.1:1", DEP, NOW)
    assert again != url and links.check_link(SECRET, *parts(again)).scope == DEP
    for secret, given, reason in (
        (b"t" * 32, (scope, exp, nonce, sig), "bad_signature"),
        (SECRET, ("all", exp, nonce, sig), "bad_signature"),  # another scope
        (SECRET, ("deployment:dep_2", exp, nonce, sig), "bad_signature"),
        (SECRET, (scope, exp, "0" * 32, sig), "bad_signature"),  # another nonce
        (SECRET, (scope, str(int(exp) + 1), nonce, sig), "bad_signature"),
        (SECRET, ("http://evil/", exp, nonce, sig), "bad_scope"),
        (SECRET, ("project:", exp, nonce, sig), "bad_scope"),
        (SECRET, (scope, exp, "short", sig), "bad_link"),
        (SECRET, (scope, "-1", nonce, sig), "bad_link"),
    ):
        with pytest.raises(links.LinkError) as refused:
            links.check_link(secret, *given)
        assert refused.value.reason == reason, given
    too_long = links.mint(SECRET, "http://x", DEP, NOW, valid_s=2 * links.MAX_LINK_S)
    with pytest.raises(links.LinkError):
        links.check_fresh(links.check_link(SECRET, *parts(too_long)), NOW)


def test_scopes_name_what_they_open() -> None:
    mine = dep(Status.LIVE)
    project, everything = Scope.project("p"), Scope.everything()
    assert [str(s) for s in (DEP, project, everything)] == ["deployment:dep_1", "project:p", "all"]
    assert Scope.parse("project:a.b:c-1") == Scope("project", "a.b:c-1")
    assert Scope.deployment(mine.id).allows(mine) and not DEP.allows(mine)
    assert project.allows(mine) and not Scope.project("q").allows(mine)
    assert everything.allows(mine) and everything.covers(DEP) and not DEP.covers(everything)
    assert project.target == "/ui/?project=p" and DEP.target == "/ui/deployments/dep_1"
    for bad in ("", "deployment:", "deployment:a b", "project:" + "x" * 129, "everything", "all:x"):
        with pytest.raises(ValueError):
            Scope.parse(bad)


def test_a_session_holds_its_grants_and_its_csrf_token() -> None:
    first = links.granted(None, DEP, NOW)
    cookie = links.session_cookie(SECRET, first)
    opened = links.open_session(SECRET, cookie, NOW + 60)
    assert opened == first and opened.grants.allows(dep(Status.LIVE, id_="dep_1"))
    assert not opened.grants.allows(dep(Status.LIVE, id_="dep_2"))
    # Another link adds its grant, keeps the session id (the CSRF token of open pages stays).
    both = links.granted(opened, Scope.project("q"), NOW + 100)
    assert both.sid == first.sid and both.grants.allows_project("q")
    assert both.grants.allows(dep(Status.LIVE, id_="dep_1"))
    links.check_csrf(SECRET, both.sid, links.csrf_token(SECRET, first.sid))
    # Each grant ends on its own: the first one is gone first.
    later = links.open_session(
        SECRET, links.session_cookie(SECRET, both), NOW + links.SESSION_S + 50
    )
    assert [str(g.scope) for g in later.grants.items] == ["project:q"]
    with pytest.raises(links.LinkError) as late:
        links.open_session(SECRET, cookie, NOW + links.SESSION_S + 1)
    assert late.value.reason == "expired"
    many = first
    for i in range(links.MAX_GRANTS + 5):
        many = links.granted(many, Scope.deployment(f"dep_{i + 10}"), NOW)
    assert len(many.grants.items) == links.MAX_GRANTS
    forged = links.session_cookie(b"x" * 32, links.granted(None, Scope.everything(), NOW))
    payload = cookie.split(".")[0]
    for bad in (None, "", cookie + "0", f"{payload}.{'0' * 64}", forged, "1.2.3", "a" * 5000):
        with pytest.raises(links.LinkError):
            links.open_session(SECRET, bad, NOW)
    for token in (None, "", links.csrf_token(SECRET, "f" * 32)):
        with pytest.raises(links.LinkError):
            links.check_csrf(SECRET, first.sid, token)


def dep(
    status: Status, created: str = "2026-01-01T00:00:00Z", id_: str | None = None, **more: Any
) -> Deployment:
    made = DeploymentId(id_ or f"dep_{created[-9:-1].replace(':', '')}")
    return Deployment(made, "p", "p", "/b", status, 1, created, created, **more)


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
                      "health": "notrun"}  # fmt: skip
    health = next(ln for ln in tl.lanes if ln.name == "health")
    assert health.word == "not run"  # it never started: not "stopped"
    assert (tl.failed_step, tl.failed_message) == ("vercel.build", "vercel 400: bad")
    vercel = next(ln for ln in tl.lanes if ln.name == "vercel").bars[0]
    supabase = next(ln for ln in tl.lanes if ln.name == "supabase").bars[0]
    assert supabase.start < vercel.start < (supabase.end or 0)  # overlapping on one axis
    for size in (timeline_svg.WIDE, timeline_svg.NARROW):
        svg = timeline_svg.svg(tl, size)
        assert svg.count('class="bar ') == 4 and "stroke-dasharray" not in svg
        assert svg.count(f"url(#hatch-{size.width})") == 1  # the failed bar, hatched
        assert ">✗</text>" in svg and ">■</text>" in svg  # and marked, not only coloured
    failure = views.failure(dep(Status.FAILED), tl)
    assert failure is not None and failure.step == "vercel.build"
    assert (failure.headline.text, failure.transcript) == ("vercel 400: bad", None)


def test_a_running_step_is_a_dashed_bar_to_now() -> None:
    events = [ev(1, "step_started", "vercel.build", 1)]
    now = timeline.parse_ts("2026-01-01T00:00:09Z")
    tl = timeline.build(events, dep(Status.RUNNING), now)
    assert tl.end == now
    assert next(ln for ln in tl.lanes if ln.name == "vercel").state == "running"
    assert "stroke-dasharray" in timeline_svg.svg(tl)


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


def test_the_list_counts_the_whole_queue_but_shows_what_the_session_may_see() -> None:
    deps = [
        dep(Status.QUEUED, "2026-01-01T00:00:04Z"),
        dep(Status.QUEUED, "2026-01-01T00:00:02Z"),
        dep(Status.LIVE, "2026-01-01T00:00:01Z"),
    ]
    mine = links.granted(None, Scope.deployment(deps[0].id), NOW).grants
    flight, rest = views.rows(deps, None, mine)
    assert [(r.dep.id, r.position) for r in flight] == [(deps[0].id, 2)] and rest == []


def ev_log(i: int, message: str, level: str = "info") -> StoredEvent:
    return StoredEvent(
        "d", i, 1, "log", f"2026-01-01T00:00:0{i}Z", {"level": level, "message": message}
    )


def test_terminal_text_is_read_as_a_terminal_shows_it() -> None:
    red = ansi.show("\x1b[31mRED\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[22m\x1b[39m.")
    assert red.segments == (("RED", "af1"), (" and ", ""), ("bold orange", "ab af208"), (".", ""))
    assert not red.rewrites and red.text == "RED and bold orange."
    assert ansi.show("\x1b[97;44mhi\x1b[49m").segments == (("hi", "af15 ag4"),)
    # Everything outside the subset goes, its parameters too; no escape byte is left.
    odd = ansi.show("\x1b]0;title\x07a\x1b[38;2;1;2;3mb\x1b[3mc\x1b[?25l\x1b[2Ad\x07\x1b(Be\x9b1m")
    assert odd.segments == (("abcde", ""),)
    # Carriage returns and erasing rewrite the line in place; at the start, the line before.
    assert ansi.show("up 1%\rup 50%\r").text == "up 50%"
    assert ansi.show("one\ntwo\rTWO").text == "one\nTWO"
    assert ansi.show("\x1b[2K\rupload 60%") == ansi.Shown((("upload 60%", ""),), True)
    assert ansi.show("\rx").rewrites and ansi.show("\x1b[31m\x1b[Kx").rewrites
    assert not ansi.show("x\x1b[K").rewrites and ansi.show("").segments == ()
    assert ".af208{color:#ff8700}" in ansi.css() and ".ag15{" in ansi.css()


def test_the_download_is_the_lines_the_page_shows() -> None:
    events = [
        ev_log(1, "\x1b[32mstart\x1b[0m"),
        ev_log(2, "upload 10%"),
        ev_log(3, "\x1b[2K\rupload 60%"),
        ev_log(4, "\rupload 100%"),
        ev_log(5, "\x1b[33mcareful\x1b[0m", "warning"),
        StoredEvent("d", 6, 1, "heartbeat", "2026-01-01T00:00:06Z", {}),
    ]
    wires = [line.wire() for line in views.log_lines(events)]
    assert wires[0] == [1, "00:00:01", "log", "info", 0, [["start", "af2"]]]
    assert wires[2][4] == 1 and wires[2][5] == "upload 60%"  # rewrites the line before
    assert wires[4][3] == "warning"
    assert views.log_text(events) == (
        "2026-01-01T00:00:01Z #1 a1 start\n"
        "2026-01-01T00:00:02Z #2 a1 upload 100%\n"
        "2026-01-01T00:00:05Z #5 a1 careful\n"
    )


def test_a_failure_shows_the_step_and_the_providers_message_first() -> None:
    error = (
        "migration supabase/migrations/2_bad.sql failed (1 of 2 applied before it): "
        "Connecting to remote database...\nApplying migration 2_bad.sql...\n"
        "ERROR: \x1b[31mRED\x1b[0m table missing (SQLSTATE P0001)\nAt statement: 0"
    )
    events = [
        ev(1, "step_started", "supabase.migrations", 1),
        ev(2, "step_failed", "supabase.migrations", 2, error=error),
    ]
    tl = timeline.build(events, dep(Status.FAILED, finished_at="2026-01-01T00:00:03Z"), NOW)
    failure = views.failure(dep(Status.FAILED), tl)
    assert failure is not None and failure.step == "supabase.migrations"
    assert (
        failure.headline.text
        == "migration supabase/migrations/2_bad.sql failed (1 of 2 applied before it)"
    )
    assert [e.segments for e in failure.errors] == [
        (("ERROR: ", ""), ("RED", "af1"), (" table missing (SQLSTATE P0001)", ""))
    ]
    assert failure.transcript is not None and failure.lines == 4
    assert failure.transcript.text.startswith("Connecting to remote database...\n")
    assert "\x1b" not in failure.transcript.text
