"""The pages in a real browser: Debian's chromium driven by Playwright (never `playwright
install`: `executable_path` is the system's /usr/bin/chromium, installed by scripts/bootstrap),
against a real dispatcher (`start_dispatcher`, tests/dispatcher/conftest.py) and the sandbox.

`signed_in(ui, page, deployment_id)` opens a link minted with the dispatcher's hook secret, as
`forge-dispatcher link` does. Screenshots go to FORGE_SCREENSHOTS (default
.forge-test/screenshots, gitignored).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from dispatcher.ui import links
from tests.dispatcher.conftest import RunningDispatcher, start_dispatcher  # noqa: F401 - fixture
from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.support.clis import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("FORGE_SCREENSHOTS", REPO / ".forge-test" / "screenshots"))
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 800}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/bootstrap"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Loopback only: anything else the browser might fetch goes to a closed port.
            proxy={"server": "http://127.0.0.1:9", "bypass": "127.0.0.1,localhost"},
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(60_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield opened
        assert not errors, f"the page's script failed: {errors}"
    finally:
        context.close()


def link(ui: RunningDispatcher, deployment_id: str | None = None) -> str:
    return links.mint(ui.secret, ui.url, links.target_for(deployment_id), time.time())


def signed_in(ui: RunningDispatcher, page: Page, deployment_id: str | None = None) -> None:
    response = page.goto(link(ui, deployment_id))
    assert response is not None and response.status == 200, response and response.status


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
