"""Steering deploys from the page in chromium: cancel a running one and see `cancelled`; a
failed one shows its failing step and the provider's message at the top, and its retry (by the
keyboard) ends live; teardown asks first (dismissed: nothing queued), then queues the teardown
and opens it, which the deployment's own session may watch; a failing migration's coloured
output shows in colour, without an escape byte, its failed bar in view at 375 px."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.dispatcher.conftest import RunningDispatcher
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import NARROW, shot, signed_in

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]


def wait_ended(page: Page, timeout_ms: float = 180_000) -> None:
    """The page's event stream ended (the deployment is over and everything was shown)."""
    expect(page.locator("#deployment")).to_have_attribute("data-ended", "1", timeout=timeout_ms)


def test_cancel_a_running_deploy_then_retry_it_to_live(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, page: Page
) -> None:
    ui = start_dispatcher()
    sandbox.set_time_scale(0.05)
    dep_id = ui.deploy("ui-cancel")["id"]
    signed_in(ui, page, dep_id)
    expect(page.locator(".steps .step[data-lane='supabase']")).to_have_attribute(
        "data-state", "running"
    )
    expect(page.get_by_role("button", name="Retry")).to_be_disabled()
    page.get_by_role("button", name="Cancel").click()
    wait_ended(page, 120_000)
    expect(page.locator("#status")).to_contain_text("cancelled")
    assert ui.get(dep_id)["status"] == "cancelled"
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    shot(page, "cancelled-desktop")

    sandbox.set_time_scale(sandbox.time_scale)
    page.get_by_role("button", name="Retry").click()
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("live")
    final = ui.get(dep_id)
    assert (final["status"], final["attempt"]) == ("live", 2), final


def test_a_failed_deploy_shows_why_and_its_retry_ends_live_then_teardown_asks_first(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, page: Page
) -> None:
    ui = start_dispatcher()
    sandbox.set_faults(
        [
            {
                "service": "vercel",
                "method": "POST",
                "path": r"^/v13/deployments$",
                "action": "status",
                "status": 400,
                "times": 1,
            }
        ]
    )
    dep_id = ui.deploy("ui-fail")["id"]
    signed_in(ui, page, dep_id)  # this deployment only: its teardown is added below
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("failed")
    failure = page.locator("#failure")
    expect(failure).to_contain_text("vercel.build")
    stored = ui.get(dep_id)
    assert stored["status"] == "failed", stored
    expect(page.locator(".steps .step[data-lane='vercel']")).to_have_attribute(
        "data-state", "failed"
    )
    expect(page.locator(".steps .step[data-lane='vercel'] .word")).to_have_text("failed")
    expect(page.locator(".steps .step[data-lane='health'] .word")).to_have_text("not run")

    # By the keyboard: Tab reaches Retry, shown focused, and Enter retries.
    for _ in range(40):
        if page.evaluate("document.activeElement.id") == "btn-retry":
            break
        page.keyboard.press("Tab")
    retry = page.get_by_role("button", name="Retry")
    expect(retry).to_be_focused()
    assert retry.evaluate("b => getComputedStyle(b).outlineStyle") != "none"
    page.keyboard.press("Enter")
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("live")
    assert page.locator("#failure").count() == 0
    assert ui.get(dep_id)["status"] == "live"

    answers = iter([False, True])
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if next(answers):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name="Tear down").click()
    expect(page.locator("#status")).to_contain_text("live")  # dismissed: still here
    assert [d.action for d in ui.store.list_deployments("ui-fail")] == ["deploy"]
    page.get_by_role("button", name="Tear down").click()
    page.wait_for_url(lambda url: dep_id not in url)
    assert len(asked) == 2 and "ui-fail" in asked[0], asked
    removal = page.url.rsplit("/", 1)[1]
    wait_ended(page, 180_000)
    done = ui.get(removal)
    assert (done["action"], done["project_id"]) == ("teardown", "ui-fail"), done
    expect(page.locator("#status")).to_contain_text(done["status"])


def test_the_list_shows_the_queue_in_order_and_filters(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, page: Page
) -> None:
    ui = start_dispatcher(FORGE_MAX_CONCURRENT="1")
    sandbox.set_time_scale(0.05)
    first = ui.deploy("ui-q-one")["id"]
    ui.wait(first, lambda d: d["status"] == "running")
    second, third = ui.deploy("ui-q-two")["id"], ui.deploy("ui-q-three")["id"]
    signed_in(ui, page)
    flight = page.locator("section.flight tbody tr")
    expect(flight).to_have_count(3)
    assert [flight.nth(i).get_attribute("data-id") for i in range(3)] == [first, second, third]
    expect(flight.nth(0).locator(".pos")).to_have_text("running")
    expect(flight.nth(1).locator(".pos")).to_have_text("#1 in queue")
    expect(flight.nth(2).locator(".pos")).to_have_text("#2 in queue")
    for i, word in enumerate(("running", "queued", "queued")):  # a word, not only a color
        expect(flight.nth(i).locator(".badge")).to_contain_text(word)
    shot(page, "list-queue-desktop")

    page.get_by_label("Status").select_option("queued")
    page.get_by_role("button", name="Filter").click()
    expect(flight).to_have_count(2)
    page.get_by_label("Project").select_option("ui-q-three")
    page.get_by_role("button", name="Filter").click()
    expect(flight).to_have_count(1)
    assert flight.first.get_attribute("data-id") == third
    for dep_id in (third, second, first):
        ui.dispatcher.deployments.cancel(dep_id)


BAD_MIGRATION = (  # a PostgreSQL error whose message is coloured, as a CLI's often is
    "DO $$ BEGIN RAISE EXCEPTION E'\\x1b[31mRED\\x1b[0m table \\x1b[1mmissing\\x1b[22m'; END $$;\n"
)


def test_a_coloured_failing_migration_shows_colours_and_no_escape_bytes(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, page: Page
) -> None:
    ui = start_dispatcher()
    name = ui.build("ui-colours")
    migration = ui.builds_root / name / "supabase" / "migrations" / "20250103000000_bad.sql"
    migration.write_text(BAD_MIGRATION)
    dep_id = ui.deploy("ui-colours")["id"]
    signed_in(ui, page, dep_id)
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("failed")
    failure = page.locator("#failure")
    expect(failure.locator("h2")).to_contain_text("supabase.migrations")  # the step first,
    expect(failure.locator(".headline")).to_contain_text("20250103000000_bad.sql failed")
    errors = failure.locator(".output.errors")  # then the provider's message, in colour
    expect(errors).to_contain_text("ERROR: RED table missing")
    expect(errors.locator("span.af1")).to_have_text("RED")
    expect(errors.locator("span.ab")).to_have_text("missing")
    red = errors.locator("span.af1").evaluate("s => getComputedStyle(s).color")
    assert red == "rgb(255, 123, 114)", red
    transcript = failure.locator("details")  # then the whole output, folded
    expect(transcript.locator("pre")).to_be_hidden()
    expect(transcript.locator("summary")).to_contain_text("lines")
    # The log's line of the failure is coloured too; nowhere is an escape byte shown.
    logged = page.locator("#log li.t-step_failed .text span.af1")
    expect(logged.first).to_have_text("RED")
    expect(errors).to_have_text("ERROR: RED table missing (SQLSTATE P0001)")  # codes read, gone
    expect(page.locator("#log li.t-step_failed").first).to_contain_text(
        "ERROR: RED table missing (SQLSTATE P0001)"
    )
    assert "\x1b" not in page.evaluate("document.documentElement.innerHTML")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download log").click()
    text = download.value.path().read_text()
    assert "ERROR: RED table missing" in text and "\x1b" not in text
    shot(page, "failed-desktop")
    transcript.locator("summary").click()
    expect(transcript.locator("pre")).to_contain_text("Applying migration 20250103000000_bad.sql")

    page.set_viewport_size(NARROW)
    page.reload()
    wait_ended(page)
    bar = page.locator("svg.timeline.w340 g.bar.failed rect").first
    expect(bar).to_be_visible()
    box = bar.bounding_box()
    assert box is not None and box["width"] >= 6, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"], box  # no sideways scroll
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    shot(page, "failed-narrow")
