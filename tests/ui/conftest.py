"""The pages in a real browser: Debian's chromium driven by Playwright (never `playwright
install`: `executable_path` is the system's /usr/bin/chromium, installed by scripts/bootstrap),
against a real dispatcher (`start_dispatcher`, tests/dispatcher/conftest.py) and the sandbox.

`signed_in(ui, page, deployment_id)` opens a link minted with the dispatcher's hook secret, as
`forge-dispatcher link` does (that deployment only; without an id, `--all`), and waits for the
page it leads to. Screenshots go to FORGE_SCREENSHOTS (default
.forge-test/screenshots, gitignored).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from dispatcher.ui import links
from dispatcher.ui.scopes import Scope
from tests.dispatcher.conftest import RunningDispatcher, start_dispatcher  # noqa: F401 - fixture
from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("FORGE_SCREENSHOTS", REPO / ".forge-test" / "screenshots"))
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 800}


_RUNNING: list[Browser] = []  # the session's one chromium (Playwright's sync API allows one)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One chromium per session, also where another folder imports this fixture (pytest then
    makes a second session fixture of it, which reuses the first's browser)."""
    if _RUNNING:
        yield _RUNNING[0]
        return
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/bootstrap"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Loopback only: anything else the browser might fetch goes to a closed port.
            proxy={"server": "http://127.0.0.1:9", "bypass": "127.0.0.1,localhost"},
        )
        _RUNNING.append(launched)
        try:
            yield launched
        finally:
            _RUNNING.clear()
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


# Vercel's promote starts by listing the project's domains: held there, the deploy waits (past
# GitHub and Supabase, before its last lines) while the page is reloaded, reconnected and a line
# selected, however slowly the page catches up.
PROMOTE_HELD = {
    "service": "vercel",
    "method": "GET",
    "path": "^/v9/projects/[^/]+/domains$",
    "action": "hold",
}


def held(sandbox: SandboxProcess) -> bool:
    """The deploy is waiting at the held promote."""
    rules: list[dict[str, Any]] = sandbox.admin("GET", "faults").json()
    return any(rule["action"] == "hold" and rule["hits"] > 0 for rule in rules)


def scope_of(deployment_id: str | None) -> Scope:
    return Scope.deployment(deployment_id) if deployment_id else Scope.everything()


def link(ui: RunningDispatcher, deployment_id: str | None = None, base: str | None = None) -> str:
    return links.mint(ui.secret, base or ui.url, scope_of(deployment_id), time.time())


def signed_in(ui: RunningDispatcher, page: Page, deployment_id: str | None = None) -> None:
    """Opens a new link to `deployment_id` (every deployment when None) and waits for its page:
    the link's own page posts it and moves on (`dispatcher.ui.signin`)."""
    response = page.goto(link(ui, deployment_id))
    assert response is not None and response.status == 200, response and response.status
    page.wait_for_url(ui.url + scope_of(deployment_id).target)


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Relay:
    """A TCP relay on a loopback port of its own to the dispatcher: `cut()` closes every
    connection and stops listening (the server gone, as the browser sees it), `restore()`
    listens again on the same port. Pages opened through `url` lose and regain the server."""

    def __init__(self, target: str) -> None:
        self.target = urlsplit(target)
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.port = 0
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.open = self.open, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(): the port is free
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection((self.target.hostname, self.target.port))
            with self.lock:
                if self.listener is not listener:
                    client.close()
                    server.close()
                    return
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay() -> Iterator[Callable[[str], Relay]]:
    made: list[Relay] = []

    def start(target: str) -> Relay:
        made.append(Relay(target))
        return made[-1]

    yield start
    for one in made:
        one.cut()


class OtherSite:
    """A page served from another site than the dispatcher's (`localhost`, where the dispatcher
    is `127.0.0.1`: to a browser, another site, as a chat or a dashboard is), showing links."""

    def __init__(self) -> None:
        self.html = b""
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(site.html)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def show(self, page: Page, **links_by_id: str) -> None:
        """Opens a page on the other site with a link per id."""
        items = "".join(f'<p><a id="{k}" href="{v}">{k}</a></p>' for k, v in links_by_id.items())
        self.html = f"<!doctype html><title>chat</title>{items}".encode()
        page.goto(f"http://localhost:{self.server.server_address[1]}/")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    yield site
    site.close()
