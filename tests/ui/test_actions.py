"""Steering deploys from the page in chromium: cancel a running one and see `cancelled`; a
failed one shows its failing step and the provider's message at the top, and its retry ends
live; teardown asks first (dismissed: nothing queued), then queues the teardown and opens it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.dispatcher.conftest import RunningDispatcher
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import shot, signed_in

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
    signed_in(ui, page, dep_id)
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("failed")
    failure = page.get_by_role("alert")
    expect(failure).to_contain_text("vercel.build")
    stored = ui.get(dep_id)
    assert stored["status"] == "failed", stored
    expect(page.locator(".steps .step[data-lane='vercel']")).to_have_attribute(
        "data-state", "failed"
    )
    expect(page.locator(".steps .step[data-lane='vercel'] .word")).to_have_text("failed")
    shot(page, "failed-desktop")

    page.get_by_role("button", name="Retry").click()
    wait_ended(page, 180_000)
    expect(page.locator("#status")).to_contain_text("live")
    assert page.get_by_role("alert").count() == 0
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
