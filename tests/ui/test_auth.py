"""The pages are not public: without the session every page and action is refused (401), a
forged, expired, reused or too-long link opens nothing, a write without the CSRF token is
refused (403) and changes nothing, and no secret is in any page."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect

from dispatcher.core.signing import signature_for
from dispatcher.ui import links
from tests.dispatcher.conftest import RunningDispatcher, leaks, sandbox_secrets
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import link, signed_in

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def paths(dep_id: str) -> list[tuple[str, str]]:
    page = f"/ui/deployments/{dep_id}"
    return [
        ("GET", "/ui/"),
        ("GET", page),
        ("GET", f"{page}/summary"),
        ("GET", f"{page}/events"),
        ("GET", f"{page}/log.txt"),
        ("POST", f"{page}/cancel"),
        ("POST", f"{page}/retry"),
        ("POST", f"{page}/teardown"),
    ]


def test_without_a_session_every_page_and_action_is_refused(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess
) -> None:
    ui = start_dispatcher()
    dep = ui.deploy("ui-auth")
    ui.wait_terminal(dep["id"])
    before = ui.store.list_deployments(None)
    s = http()
    forged_cookie = f"{int(time.time()) + 3600}.{'0' * 32}.{'f' * 64}"
    for method, path in paths(dep["id"]):
        for cookies in ({}, {links.COOKIE: forged_cookie}, {links.COOKIE: "junk"}):
            answer = s.request(method, ui.url + path, cookies=cookies, data={"csrf": "x"})
            assert answer.status_code == 401, (method, path, cookies, answer.status_code)
            assert "Not allowed" in answer.text
            assert "set-cookie" not in answer.headers
    # A hook signature is not a session either.
    signed = s.get(ui.url + "/ui/", headers=ui.signer.headers(b""))
    assert signed.status_code == 401
    assert ui.store.list_deployments(None) == before  # nothing was cancelled or queued


def _tampered(url: str, **change: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | change
    return f"{parts.scheme}://{parts.netloc}{parts.path}?" + "&".join(
        f"{k}={requests.utils.quote(v, safe='/')}" for k, v in query.items()
    )


def test_forged_expired_reused_links_and_missing_csrf_are_refused(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess
) -> None:
    ui = start_dispatcher()
    dep = ui.deploy("ui-links")
    ui.wait_terminal(dep["id"])
    s = http()
    good = link(ui, dep["id"])
    now = int(time.time())
    other = signature_for(b"not-the-secret", b"forge-ui-link /ui/", str(now + 60))
    expired_exp = str(now - 5)
    expired_sig = signature_for(ui.secret, b"forge-ui-link /ui/", expired_exp)
    too_long_exp = str(now + 10 * 3600)
    too_long_sig = signature_for(ui.secret, b"forge-ui-link /ui/", too_long_exp)
    refused = {
        "wrong key": _tampered(good, next="/ui/", exp=str(now + 60), sig=other),
        "other page": _tampered(good, next="/ui/"),
        "expired": _tampered(good, next="/ui/", exp=expired_exp, sig=expired_sig),
        "too long": _tampered(good, next="/ui/", exp=too_long_exp, sig=too_long_sig),
        "off site": _tampered(good, next="https://example.com/"),
        "no signature": _tampered(good, sig=""),
    }
    for why, url in refused.items():
        answer = s.get(url, allow_redirects=False)
        assert answer.status_code == 401, (why, answer.status_code)
        assert "set-cookie" not in answer.headers, why

    opened = s.get(good, allow_redirects=False)
    assert opened.status_code == 303, opened.text
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui/" in cookie
    assert s.get(good, allow_redirects=False).status_code == 401  # a link opens once
    fresh = http()
    assert fresh.get(good, allow_redirects=False).status_code == 401

    # Signed in: the page opens; a write without (or with a wrong) CSRF token is refused.
    assert s.get(ui.url + f"/ui/deployments/{dep['id']}").status_code == 200
    for form in ({}, {"csrf": "0" * 64}):
        answer = s.post(ui.url + f"/ui/deployments/{dep['id']}/teardown", data=form)
        assert answer.status_code == 403, answer.text
    assert [d.id for d in ui.store.list_deployments(None)] == [dep["id"]]

    # No token, password or key in any page or answer.
    texts = {
        path: s.request("GET", ui.url + path).text
        for method, path in paths(dep["id"])
        if method == "GET"
    }
    assert not leaks(texts, {**sandbox_secrets(sandbox), "hook secret": ui.secret.decode()})


def test_the_cli_link_opens_the_page_in_the_browser_and_a_forged_one_does_not(
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    page: Page,
    tmp_path: Path,
) -> None:
    ui = start_dispatcher()
    dep = ui.deploy("ui-cli-link")
    ui.wait_terminal(dep["id"])
    secret_file = tmp_path / "hook_secret"  # the compose stack's way: a file, not a value
    secret_file.write_text(ui.secret.decode() + "\n")
    env = {"FORGE_HOOK_SECRET_FILE": str(secret_file), "FORGE_DISPATCHER_URL": ui.url, "PATH": ""}
    printed = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "link", dep["id"]],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert ui.secret.decode() not in printed
    forged = printed[:-4] + ("0000" if not printed.endswith("0000") else "1111")
    answer = page.goto(forged)
    assert answer is not None and answer.status == 401
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    answer = page.goto(printed)
    assert answer is not None and answer.status == 200
    expect(page.locator("#status")).to_contain_text("live")
    assert page.url.endswith(f"/ui/deployments/{dep['id']}")
    signed_in(ui, page)  # a second link, to the list
    expect(page.get_by_role("link", name=dep["id"])).to_be_visible()
