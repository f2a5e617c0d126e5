"""The kit's deploy panel live in chromium: the dashboard page of tests/forgeboard/node (the
panel bundled by esbuild with the real supabase-js, the dashboard's API and Realtime websocket
forwarded to the sandbox) signed in as Alice, a real deploy by a real dispatcher whose status
mirror writes the row, the panel following it through the sandbox's Realtime.

- From the click to `live`, each step only moves forward (running, then done) and the status
  only forward, as the panel receives the mirror's updates; the links appear at the end.
- Realtime dropped mid-deploy (the sandbox closes the sockets and refuses new ones): the panel
  says its live updates are paused, the deploy finishes meanwhile, and once Realtime is back
  the panel re-reads the row and shows the current state.
- Bob, another dashboard user opening the same deployment, sees nothing of it.
- Screenshots of the panel running, paused, live, failed and on a 375 px screen, in
  FORGE_SCREENSHOTS (.forge-test/screenshots); docs/screenshots holds the ones looked at.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dispatcher.conftest import RunningDispatcher, start_dispatcher  # noqa: F401 - fixture
from tests.forgeboard.conftest import Dashboard
from tests.forgeboard.test_live_link import start_dashboard
from tests.support.clis import CliRunner
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import SHOTS

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]
ORDER = {"queued": 0, "running": 1, "live": 2, "unhealthy": 2, "failed": 2, "cancelled": 2}
STEP_ORDER = {"running": 0, "done": 1, "skipped": 1, "failed": 1}
DEPLOY_MS = 240_000  # a bound on waiting for the deploy, never a timed assertion

# Records every state the panel shows: its status and each step's state, one entry per change.
WATCH = """
window.__panel = [];
new MutationObserver(() => {
  const box = document.querySelector('.forge-deployment');
  if (!box) return;
  const seen = {
    status: box.getAttribute('data-status'),
    steps: [...box.querySelectorAll('.forge-steps li')].map((li) =>
      [li.querySelector('.forge-step-name').textContent, li.getAttribute('data-state')]),
  };
  const last = window.__panel[window.__panel.length - 1];
  if (JSON.stringify(last) !== JSON.stringify(seen)) window.__panel.push(seen);
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"forgeboard-{name}.png"), full_page=True)


def _moves_forward(history: list[dict[str, Any]]) -> None:
    """No step ever goes back, nor the status."""
    statuses = [ORDER[h["status"]] for h in history]
    assert statuses == sorted(statuses), [h["status"] for h in history]
    reached: dict[str, int] = {}
    for entry in history:
        for name, state in entry["steps"]:
            assert STEP_ORDER[state] >= reached.get(name, 0), (name, history)
            reached[name] = STEP_ORDER[state]


def _row(dashboard: Dashboard, project_id: str) -> dict[str, Any]:
    service = dashboard.client(dashboard.secret_key)
    rows = service.table("deployments").select("*").eq("project_id", project_id).execute()
    assert len(rows.data) == 1, rows.data
    found: dict[str, Any] = rows.data[0]
    return found


def test_the_panel_follows_a_deploy_through_realtime(
    cli: CliRunner,
    sandbox: SandboxProcess,
    dashboard: Dashboard,
    start_dispatcher: Callable[..., RunningDispatcher],  # noqa: F811
    browser: Browser,
    unique: str,
    out_dir: Path,
) -> None:
    running = start_dispatcher(**dashboard.mirror_env())
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    project_id = f"proj_{unique}_live"
    name = running.build(f"fb{unique}-live")
    service = dashboard.client(dashboard.secret_key)
    service.table("projects").insert(
        {"id": project_id, "owner_id": alice, "name": name, "build_dir": name}
    ).execute()
    server = start_dashboard(
        cli,
        out_dir,
        {
            "FORGEBOARD_TEST_DASHBOARD_URL": dashboard.url,
            "FORGEBOARD_TEST_PUBLISHABLE_KEY": dashboard.publishable_key,
            "FORGEBOARD_TEST_DISPATCHER_URL": running.url,
            "FORGEBOARD_TEST_HOOK_SECRET": running.secret.decode(),
            "FORGEBOARD_TEST_ALICE_TOKEN": dashboard.user_token(alice),
            "FORGEBOARD_TEST_BOB_TOKEN": dashboard.user_token(bob),
            "FORGEBOARD_TEST_PROJECT_ONE": project_id,
        },
    )
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(60_000)
    drop = f"supabase/projects/{dashboard.ref}/realtime/drop"
    errors: list[str] = []
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("listening "), ready
        site = f"http://localhost:{ready.split()[1]}"
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.add_init_script(WATCH)
        page.goto(site + "/")
        page.get_by_role("button", name="Deploy").click()
        panel = page.locator(".forge-deployment")
        expect(panel).to_be_visible()
        row_id = _row(dashboard, project_id)["id"]

        # Bob opens the same deployment: RLS hides the row and its changes from him.
        spy = context.new_page()
        spy.add_init_script(WATCH)
        spy.goto(f"{site}/?deployment={row_id}&user=bob")

        # Steps turn done as the mirror writes them, received over Realtime.
        expect(panel.locator(".forge-steps li[data-state=done]").first).to_be_visible(
            timeout=DEPLOY_MS
        )
        expect(panel).to_have_attribute("data-status", "running")
        _shot(page, "panel-running")

        # Realtime goes away mid-deploy; the deploy and the mirror go on without it.
        assert sandbox.admin("POST", drop, {"seconds": 3600}).json()["closed"] >= 1
        expect(page.locator(".forge-connection")).to_have_text("Live updates paused: reconnecting…")
        for _ in range(int(DEPLOY_MS / 200)):  # a bound on reads, not a timer
            if _row(dashboard, project_id)["status"] == "live":
                break
            page.wait_for_timeout(200)
        assert _row(dashboard, project_id)["status"] == "live"
        expect(panel).to_have_attribute("data-status", "running")  # nothing came meanwhile
        _shot(page, "panel-paused")
        assert sandbox.admin("POST", drop, {"seconds": 0}).ok  # Realtime is back

        # realtime-js rejoins; the panel re-reads the row: live, with its links.
        expect(panel).to_have_attribute("data-status", "live", timeout=DEPLOY_MS)
        expect(page.locator(".forge-connection")).to_have_count(0)
        expect(page.get_by_role("link", name="Open the live app")).to_be_visible()
        expect(page.get_by_role("link", name="Repository")).to_be_visible()
        expect(page.get_by_role("button", name="Open the live page")).to_be_visible()
        final = _row(dashboard, project_id)
        shown = page.evaluate("window.__panel[window.__panel.length - 1]")
        assert shown["steps"] == [[s["step"], s["state"]] for s in final["steps"]]
        assert set(dict(shown["steps"]).values()) <= {"done", "skipped"}
        _shot(page, "panel-live")

        history: list[dict[str, Any]] = page.evaluate("window.__panel")
        _moves_forward(history)
        # Updates arrived one by one before the drop, not only in the final read.
        during = [h for h in history if h["status"] == "running"]
        assert len({str(h["steps"]) for h in during}) >= 2, history
        assert spy.evaluate("window.__panel") == []
        expect(spy.locator(".forge-deployment")).to_have_count(0)

        # On a phone: the same panel, readable at 375 px.
        phone = browser.new_context(viewport={"width": 375, "height": 800})
        small = phone.new_page()
        small.goto(f"{site}/?deployment={row_id}")
        expect(small.locator(".forge-deployment")).to_have_attribute("data-status", "live")
        assert small.evaluate("document.documentElement.scrollWidth") <= 375
        _shot(small, "panel-live-narrow")
        phone.close()

        # A failed deployment's row, as the mirror writes one, shows its failed step's error.
        failed = (
            service.table("deployments")
            .insert(
                {
                    "request_id": f"failed-{unique}",
                    "project_id": project_id,
                    "owner_id": alice,
                    "status": "failed",
                    "step": "supabase.migrations",
                    "version": 7,
                    "error": 'supabase.migrations failed: relation "orders" already exists',
                    "steps": [
                        {
                            "step": "github.repo",
                            "state": "done",
                            "started_at": final["created_at"],
                            "finished_at": final["updated_at"],
                            "error": None,
                        },
                        {
                            "step": "supabase.migrations",
                            "state": "failed",
                            "started_at": final["created_at"],
                            "finished_at": final["updated_at"],
                            "error": 'ERROR: relation "orders" already exists (SQLSTATE 42P07)',
                        },
                    ],
                    "log_tail": ["applying 20261201_orders.sql", 'relation "orders" exists'],
                }
            )
            .execute()
        )
        page.goto(f"{site}/?deployment={failed.data[0]['id']}")
        expect(panel).to_have_attribute("data-status", "failed")
        expect(panel.locator(".forge-steps li[data-state=failed]")).to_contain_text("42P07")
        _shot(page, "panel-failed")
        assert not errors, errors
    finally:
        sandbox.admin("POST", drop, {"seconds": 0})
        context.close()
        server.terminate()
        server.wait(timeout=30)
