"""Watching a deploy in chromium: the list shows it in flight as it is queued (no reload), its
page shows the four steps turning done in order (Vercel's promote after Supabase's migrations,
health last), the log grows while it runs, a reload and a dropped connection resume with every
line once, and at the end the URLs are shown; the page works at 375 px (the running bar in
view), every button has a name, and the connection word tells the truth when the server goes
away and comes back."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, Route, expect

from dispatcher.ui.views import line_text
from tests.dispatcher.conftest import RunningDispatcher
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import (
    DESKTOP,
    NARROW,
    PROMOTE_HELD,
    SHOTS,
    Relay,
    held,
    link,
    shot,
    signed_in,
)

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]
LANES = ("github", "supabase", "vercel", "health")
STATES_JS = """() => Object.fromEntries([...document.querySelectorAll('.steps .step')]
  .map(li => [li.dataset.lane, li.dataset.state]))"""
SELECT_JS = """() => { const r = document.createRange();
  r.selectNodeContents(document.querySelector('#log li .text'));
  const s = window.getSelection(); s.removeAllRanges(); s.addRange(r); return String(s); }"""
# Where the narrow timeline's running or failed bar is, against the screen's width.
BAR_JS = """state => { const bar = document.querySelector(`svg.timeline.w340 g.bar.${state} rect`);
  if (!bar) return null; const r = bar.getBoundingClientRect();
  return [r.left, r.right, r.width, window.innerWidth]; }"""
ENTRY = re.compile(r"^\S+ #(\d+) a\d+ (.*?)(?=\n\S+ #\d+ a\d+ |\n\Z)", re.S | re.M)


def shown_ids(page: Page) -> list[int]:
    """Every event id the page's log holds (a rewritten line holds several), in order."""
    ids: list[int] = page.evaluate("window.forgeLog.ids()")
    return ids


def expected_ids(ui: RunningDispatcher, dep_id: str) -> list[int]:
    return [e.id for e in ui.store.events(dep_id) if line_text(e) is not None]


def unnamed_buttons(page: Page) -> list[str]:
    found: list[str] = page.locator("button, a.button, a.ln").evaluate_all(
        """els => els.filter(e => !(e.getAttribute('aria-label') || e.textContent.trim()))
             .map(e => e.outerHTML)"""
    )
    return found


def bar_in_view(page: Page, state: str) -> None:
    """The narrow timeline's `state` bar is drawn and wholly within the screen's width."""
    found = page.evaluate(BAR_JS, state)
    assert found is not None, f"no {state} bar in the narrow timeline"
    left, right, width, screen = found
    assert width >= 6 and left >= 0 and right <= screen, found


def test_a_running_deploy_is_watched_to_live(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, page: Page
) -> None:
    ui = start_dispatcher()
    sandbox.set_time_scale(0.05)  # Supabase provisions ~4.5 s, Vercel builds ~6 s
    sandbox.set_faults([PROMOTE_HELD])  # the deploy waits at vercel.promote until released
    signed_in(ui, page)
    expect(page.locator("#list-state")).to_have_text("live")
    dep = ui.deploy("ui-watch")  # queued while the list is open: it shows up by itself
    dep_id = dep["id"]
    row = page.locator(f"section.flight tr[data-id='{dep_id}']")
    expect(row).to_be_visible()
    expect(row).to_contain_text("ui-watch")
    shot(page, "list-desktop")

    page.goto(ui.url + f"/ui/deployments/{dep_id}")
    seen: dict[str, list[str]] = {lane: [] for lane in LANES}
    done_order: list[str] = []
    counts: list[int] = []
    reloaded = reconnected = shot_running = False
    selected, selected_at = "", 0
    while True:
        states: dict[str, str] = page.evaluate(STATES_JS)
        for lane in LANES:
            if not seen[lane] or seen[lane][-1] != states[lane]:
                seen[lane].append(states[lane])
                if states[lane] == "done":
                    done_order.append(lane)
        ended = page.evaluate("document.getElementById('deployment').dataset.ended === '1'")
        counts.append(len(shown_ids(page)))
        if not shot_running and "running" in states.values() and counts[-1] > 5:
            shot(page, "running-desktop")
            page.set_viewport_size(NARROW)
            bar_in_view(page, "running")
            shot(page, "running-narrow")
            page.set_viewport_size(DESKTOP)
            shot_running = True
        if not reloaded and states["github"] == "done" and not ended:
            page.reload()  # a reload mid-deploy: starts from the first line again, once
            reloaded = True
        elif reloaded and not reconnected and states["supabase"] == "done" and held(sandbox):
            page.evaluate("window.forgeLog.reconnect()")  # a dropped connection, resumed
            reconnected = True
            selected = page.evaluate(SELECT_JS)  # a selection, kept while lines arrive
            selected_at = len(shown_ids(page))
            sandbox.set_faults([])  # released: promote, health and the result lines follow
        if ended:
            break
        page.wait_for_timeout(100)

    expect(page.locator("#status")).to_contain_text("live")
    assert selected and page.evaluate("String(window.getSelection())") == selected
    assert len(shown_ids(page)) > selected_at, "no line came after the selection was made"
    final = ui.get(dep_id)
    assert final["status"] == "live", final
    # Each lane went forward only, and they finished in the pipeline's order.
    for lane in LANES:
        assert seen[lane][-1] == "done", seen
        order = ["pending", "running", "done"]
        assert [order.index(s) for s in seen[lane]] == sorted(order.index(s) for s in seen[lane])
    assert any("running" in s for s in seen.values()), seen  # watched while it ran
    assert done_order.index("supabase") < done_order.index("vercel") < done_order.index("health")
    assert done_order[-1] == "health", done_order
    assert reloaded and reconnected
    assert max(counts) > min(c for c in counts if c > 0), counts  # the log grew in view

    ids = shown_ids(page)
    assert len(ids) == len(set(ids)), "a log line was shown twice"
    assert ids == expected_ids(ui, dep_id), "a log line is missing or out of order"
    for name, url in final["urls"].items():
        if url:
            expect(page.locator(f"#url-{name}")).to_have_attribute("href", url)
    assert page.locator(".failure").count() == 0
    bars = page.locator("svg.timeline g.bar")
    assert bars.count() >= 8, "every sub-step is a bar"
    expect(page.locator("svg.timeline g.bar.running")).to_have_count(0)
    expect(page.locator("#log-state")).to_have_text("complete")
    expect(page.locator("#live-status")).to_have_text("live")
    assert unnamed_buttons(page) == []
    shot(page, "live-desktop")

    # Search narrows the lines; the wrap toggle; a line's link; the download is the whole log.
    page.get_by_label("Search").fill("migrations")
    expect(page.locator("#log-count")).to_contain_text("match")
    matching: list[int] = page.evaluate("window.forgeLog.shown()")
    texts: list[str] = page.evaluate("window.forgeLog.texts()")
    assert 0 < len(matching) < len(texts)
    expect(page.locator("#log li")).to_have_count(len(matching))  # few: all drawn
    for text in page.locator("#log li .text").all_inner_texts():
        assert "migrations" in text.lower()
    page.get_by_label("Search").fill("")
    expect(page.locator("#log-count")).to_have_text(f"{len(texts)} lines")
    page.get_by_label("Wrap lines").uncheck()
    expect(page.locator("#log")).not_to_have_class("log wrap")
    first = page.locator("#log li a.ln").first
    first.click()
    assert page.url.endswith(f"#L{ids[0]}")
    expect(page.locator("#log li.target")).to_have_id(f"L{ids[0]}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download log").click()
    entries = [(int(m[1]), m[2]) for m in ENTRY.finditer(download.value.path().read_text())]
    firsts: list[int] = page.evaluate("window.forgeLog.shown()")
    assert entries == list(zip(firsts, texts, strict=True))  # the page's lines, as text

    page.set_viewport_size(NARROW)
    page.reload()
    expect(page.locator("#status")).to_contain_text("live")
    expect(page.locator("#deployment")).to_have_attribute("data-ended", "1")
    width: Any = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], f"the page is {width} px wide at 375 px"
    expect(page.locator("svg.timeline.w760")).to_be_hidden()
    expect(page.locator("svg.timeline.w340")).to_be_visible()
    shot(page, "live-narrow")
    page.goto(ui.url + "/ui/")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    cell = page.locator(f"tr[data-id='{dep_id}'] td[data-label='Deployment']")
    label = cell.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Deployment"', label  # each cell says what it is once the heads are gone
    shot(page, "list-narrow")

    # The same timeline as a PNG, from the CLI.
    png = SHOTS / "timeline.png"
    png.unlink(missing_ok=True)
    env = {"FORGE_HOOK_SECRET": ui.secret.decode(), "FORGE_DISPATCHER_URL": ui.url, "PATH": ""}
    subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "timeline", dep_id, "--png", str(png)],
        env=env, cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    with Image.open(png) as picture:
        assert picture.format == "PNG" and picture.width >= 800, picture


def test_the_connection_word_tells_the_truth_and_a_failed_refresh_is_tried_again(
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    page: Page,
    relay: Callable[[str], Relay],
) -> None:
    ui = start_dispatcher()
    sandbox.set_time_scale(0.05)
    sandbox.set_faults([PROMOTE_HELD])
    dep_id = ui.deploy("ui-reconnect")["id"]
    between = relay(ui.url)  # the browser reaches the dispatcher through it
    page.goto(link(ui, dep_id, base=between.url))
    page.wait_for_url(between.url + f"/ui/deployments/{dep_id}")
    state = page.locator("#log-state")
    expect(state).to_have_text("live")
    while not held(sandbox):
        page.wait_for_timeout(100)
    seen = len(shown_ids(page))

    between.cut()  # the server is gone, as far as the browser can tell
    expect(state).to_have_text("reconnecting…")
    between.restore()
    expect(state).to_have_text("live", timeout=30_000)  # the browser's own retry, then open

    # The summary refresh fails while the deploy ends (its answer dropped): the page tries
    # again, and shows the end once it gets through.
    failing = True

    def summary(route: Route) -> None:
        if failing:
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r".*/summary$"), summary)
    sandbox.set_faults([])
    expect(state).to_have_text("complete", timeout=120_000)
    expect(page.locator("#status")).to_contain_text("running")  # not refreshed yet
    failing = False
    expect(page.locator("#status")).to_contain_text("live", timeout=30_000)
    expect(page.locator("#deployment")).to_have_attribute("data-ended", "1")
    ids = shown_ids(page)
    assert len(ids) > seen and ids == expected_ids(ui, dep_id)  # every line once, in order
