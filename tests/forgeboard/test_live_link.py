"""The kit's "open live page" link in chromium: a dashboard on another site (tests/forgeboard/node/
dashboard-server.ts, the kit's DeployPanel bundled by esbuild, its server actions run in Node
with the hook secret) deploys a project, and the panel's link, minted by the server action at
click time, opens the dispatcher's page of that deployment in a new tab. The secret never
reaches the browser; someone else's deployment gets no link."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Response, expect
from playwright.sync_api import Error as PlaywrightError

from tests.dispatcher.conftest import RunningDispatcher, start_dispatcher  # noqa: F401 - fixture
from tests.forgeboard.conftest import Dashboard, add_project
from tests.support.clis import REPO, CliRunner

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]
NODE_TESTS = REPO / "tests" / "forgeboard" / "node"


def start_dashboard(cli: CliRunner, out_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    compiled = cli.run(["tsc", "-p", str(NODE_TESTS), "--outDir", str(out_dir)], check=False)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    bundle = out_dir / "panel.js"
    bundled = cli.run(
        [
            "esbuild",
            str(NODE_TESTS / "panel-page.tsx"),
            "--bundle",
            "--format=iife",
            "--define:process.env.NODE_ENV='production'",
            f"--outfile={bundle}",
            "--log-level=warning",
        ],
        check=False,
    )
    assert bundled.returncode == 0, bundled.stdout + bundled.stderr
    server = out_dir / "tests" / "forgeboard" / "node" / "dashboard-server.js"
    return subprocess.Popen(
        ["node", str(server)],
        env=cli.env({**env, "FORGEBOARD_TEST_BUNDLE": str(bundle)}),
        stdout=subprocess.PIPE,
        text=True,
    )


def body_of(response: Response) -> tuple[str, bytes]:
    try:
        return response.url, response.body()
    except PlaywrightError:  # a redirect's or an aborted request's: no body
        return response.url, b""


def test_the_panels_link_opens_the_live_page_through_the_server_action(
    cli: CliRunner,
    dashboard: Dashboard,
    start_dispatcher: Callable[..., RunningDispatcher],  # noqa: F811
    browser: Browser,
    unique: str,
    out_dir: Path,
) -> None:
    running = start_dispatcher(**dashboard.mirror_env())
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    service = dashboard.client(dashboard.secret_key)
    project_id = f"proj_{unique}_panel"
    add_project(dashboard, running, project_id, alice, f"fb{unique}-panel")
    bobs = (
        service.table("deployments")
        .insert({"request_id": f"bob-{unique}", "project_id": "bobs", "owner_id": bob})
        .execute()
    )
    secret = running.secret.decode()
    server = start_dashboard(
        cli,
        out_dir,
        {
            "FORGEBOARD_TEST_DASHBOARD_URL": dashboard.url,
            "FORGEBOARD_TEST_PUBLISHABLE_KEY": dashboard.publishable_key,
            "FORGEBOARD_TEST_DISPATCHER_URL": running.url,
            "FORGEBOARD_TEST_HOOK_SECRET": secret,
            "FORGEBOARD_TEST_ALICE_TOKEN": dashboard.user_token(alice),
            "FORGEBOARD_TEST_PROJECT_ONE": project_id,
        },
    )
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("listening "), ready
        # localhost, where the dispatcher is 127.0.0.1: to the browser, another site.
        site = f"http://localhost:{ready.split()[1]}"
        received: list[tuple[str, bytes]] = []  # what the dashboard's page was sent
        page = context.new_page()
        page.on("response", lambda response: received.append(body_of(response)))
        page.goto(site + "/")
        page.get_by_role("button", name="Deploy").click()
        expect(page.locator(".forge-deployment")).to_be_visible()  # the row, read once

        # The status mirror writes forge-deploy's id into the row; the panel, reopened on it,
        # offers the live page (realtime would bring the same row without the reload).
        row_id = ""
        for _ in range(600):  # a bound on reads, not a timer
            rows = service.table("deployments").select("*").eq("project_id", project_id).execute()
            if rows.data and rows.data[0]["dispatcher_id"]:
                row_id, dispatcher_id = rows.data[0]["id"], rows.data[0]["dispatcher_id"]
                break
            page.wait_for_timeout(100)
        assert row_id, "the mirror never wrote the dispatcher's id"
        page.goto(f"{site}/?deployment={row_id}")
        with context.expect_page() as opened:
            page.get_by_role("button", name="Open the live page").click()
        live = opened.value
        live.wait_for_url(f"{running.url}/ui/deployments/{dispatcher_id}")
        expect(live.locator("main")).to_contain_text(dispatcher_id)
        live.reload()  # the session it opened is its own, and kept
        expect(live.locator("main")).to_contain_text(dispatcher_id)

        # Nothing the dashboard's page received holds the hook secret.
        assert any(url.endswith("/actions/live-link") for url, _ in received)
        for url, body in received:
            assert secret.encode() not in body, url
        # Each click mints a new link; another user's row gets none.
        http = requests.Session()
        http.trust_env = False
        action = f"http://127.0.0.1:{ready.split()[1]}/actions/live-link"
        first, second = (http.post(action, json={"deploymentId": row_id}).json() for _ in "ab")
        assert first["ok"] and second["ok"] and first["url"] != second["url"]
        assert re.match(re.escape(running.url) + r"/ui/login\?scope=deployment%3A", first["url"])
        refused = http.post(action, json={"deploymentId": bobs.data[0]["id"]}).json()
        assert refused == {
            "ok": False,
            "code": "no_such_deployment",
            "message": f"no deployment {bobs.data[0]['id']} of yours",
        }
    finally:
        context.close()
        server.terminate()
        server.wait(timeout=30)
