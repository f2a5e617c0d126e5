"""The pages are not public, and a link opens what it names, from wherever it is clicked.

Without a session every page and action is refused (401); a forged, expired, reused or
too-long link opens nothing; a write without the CSRF token is refused (403) and changes
nothing; a session scoped to one deployment gets 403 on another's page, log, events and
actions; a link clicked on another site signs in and its page's actions work; two links minted
in one second both open once; and no secret is in any page."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from dispatcher.core.signing import signature_for
from dispatcher.ui import links
from dispatcher.ui.scopes import Scope
from tests.dispatcher.conftest import RunningDispatcher, leaks, sandbox_secrets
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess
from tests.ui.conftest import DESKTOP, PROMOTE_HELD, OtherSite, held, link, signed_in

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.browser]


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def paths(dep_id: str) -> list[tuple[str, str]]:
    page = f"/ui/deployments/{dep_id}"
    return [
        ("GET", "/ui/"),
        ("GET", "/ui/rows"),
        ("GET", page),
        ("GET", f"{page}/summary"),
        ("GET", f"{page}/events"),
        ("GET", f"{page}/log.txt"),
        ("POST", f"{page}/cancel"),
        ("POST", f"{page}/retry"),
        ("POST", f"{page}/teardown"),
    ]


def form(url: str) -> dict[str, str]:
    """A link's fields, as its page posts them."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def sign_in(ui: RunningDispatcher, s: requests.Session, url: str) -> requests.Response:
    """What a link's page does: post the link back (no redirect followed)."""
    return s.post(ui.url + "/ui/login", data=form(url), allow_redirects=False)


def test_without_a_session_every_page_and_action_is_refused(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess
) -> None:
    ui = start_dispatcher()
    dep = ui.deploy("ui-auth")
    ui.wait_terminal(dep["id"])
    before = ui.store.list_deployments(None)
    s = http()
    forged = links.session_cookie(b"not-the-secret", links.granted(None, Scope.everything(), 0))
    for method, path in paths(dep["id"]):
        for cookies in ({}, {links.COOKIE: forged}, {links.COOKIE: "junk"}):
            answer = s.request(method, ui.url + path, cookies=cookies, data={"csrf": "x"})
            assert answer.status_code == 401, (method, path, cookies, answer.status_code)
            assert "Not allowed" in answer.text
            assert "set-cookie" not in answer.headers
    # A hook signature is not a session either; the favicon is open (browsers ask for it).
    assert s.get(ui.url + "/ui/", headers=ui.signer.headers(b"")).status_code == 401
    icon = s.get(ui.url + "/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    assert ui.store.list_deployments(None) == before  # nothing was cancelled or queued


def test_forged_expired_reused_links_and_missing_csrf_are_refused(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess
) -> None:
    ui = start_dispatcher()
    dep = ui.deploy("ui-links")
    ui.wait_terminal(dep["id"])
    s = http()
    good = link(ui, dep["id"])
    fields = form(good)
    now = int(time.time())

    def signed(scope: str, exp: int, secret: bytes = ui.secret) -> dict[str, str]:
        body = f"forge-ui-link {scope} {fields['nonce']}".encode()
        return {
            **fields,
            "scope": scope,
            "exp": str(exp),
            "sig": signature_for(secret, body, str(exp)),
        }

    refused = {
        "wrong key": signed("all", now + 60, b"not-the-secret"),
        "other scope": {**fields, "scope": "all"},
        "expired": signed("all", now - 5),
        "too long": signed("all", now + 10 * 3600),
        "off site": {**fields, "scope": "https://example.com/"},
        "no signature": {**fields, "sig": ""},
    }
    for why, given in refused.items():
        answer = s.post(ui.url + "/ui/login", data=given, allow_redirects=False)
        assert answer.status_code == 401, (why, answer.status_code)
        assert "set-cookie" not in answer.headers, why
        if why not in ("expired", "too long"):  # the link's page checks the signature too
            assert s.get(ui.url + "/ui/login", params=given).status_code == 401, why

    # The link's page is ours, spends nothing, and says what it opens; its post signs in.
    landing = s.get(good)
    assert landing.status_code == 200 and dep["id"] in landing.text
    assert 'id="signin"' in landing.text and "set-cookie" not in landing.headers
    assert s.get(good).status_code == 200  # previews and scanners may read it: still unspent
    cross = s.post(ui.url + "/ui/login", data=fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers  # not from our page
    opened = sign_in(ui, s, good)
    assert opened.status_code == 303, opened.text
    assert opened.headers["location"] == f"/ui/deployments/{dep['id']}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui/" in cookie
    # Used: opened again by the browser that used it, it goes through (no new cookie); by any
    # other, it is refused.
    again = sign_in(ui, s, good)
    assert again.status_code == 303 and "set-cookie" not in again.headers
    assert s.get(good, allow_redirects=False).status_code == 303  # its page moves on at once
    stranger = sign_in(ui, http(), good)
    assert stranger.status_code == 401 and "used already" in stranger.text

    # Signed in: the page opens; a write without (or with a wrong) CSRF token is refused.
    assert s.get(ui.url + f"/ui/deployments/{dep['id']}").status_code == 200
    for body in ({}, {"csrf": "0" * 64}):
        answer = s.post(ui.url + f"/ui/deployments/{dep['id']}/teardown", data=body)
        assert answer.status_code == 403, answer.text
    assert [d.id for d in ui.store.list_deployments(None)] == [dep["id"]]

    # No token, password or key in any page or answer.
    texts = {
        path: s.request("GET", ui.url + path).text
        for method, path in paths(dep["id"])
        if method == "GET"
    }
    assert not leaks(texts, {**sandbox_secrets(sandbox), "hook secret": ui.secret.decode()})


def test_a_deployment_scoped_session_sees_that_deployment_only(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess
) -> None:
    ui = start_dispatcher()
    mine, theirs = ui.deploy("ui-scope-a"), ui.deploy("ui-scope-b")
    for dep in (mine, theirs):
        ui.wait_terminal(dep["id"])
    before = ui.store.list_deployments(None)
    s = http()
    assert sign_in(ui, s, link(ui, mine["id"])).status_code == 303
    for method, path in paths(theirs["id"]):
        if path.startswith("/ui/deployments/"):
            answer = s.request(method, ui.url + path, data={"csrf": "x"})
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert f"deployment {mine['id']}" in answer.text  # says what it does open
    unknown = s.get(ui.url + "/ui/deployments/dep_000000000000000000000000")
    assert unknown.status_code == 403  # an unknown one looks the same: no oracle
    for method, path in paths(mine["id"])[:6]:
        assert s.request(method, ui.url + path).status_code == 200, path
    listed = s.get(ui.url + "/ui/").text
    assert mine["id"] in listed and theirs["id"] not in listed and "ui-scope-b" not in listed
    assert theirs["id"] not in s.get(ui.url + "/ui/rows", params={"project": "ui-scope-b"}).text
    # Its CSRF token does not act on the other: the scope is checked first.
    page = s.get(ui.url + f"/ui/deployments/{mine['id']}").text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    retry = s.post(ui.url + f"/ui/deployments/{theirs['id']}/teardown", data={"csrf": token})
    assert retry.status_code == 403
    assert ui.store.list_deployments(None) == before

    # A project's link opens its deployments; an operator's (--all) every one.
    project = http()
    project_link = links.mint(ui.secret, ui.url, Scope.project("ui-scope-b"), time.time())
    opened = sign_in(ui, project, project_link)
    assert opened.headers["location"] == "/ui/?project=ui-scope-b"
    assert project.get(ui.url + f"/ui/deployments/{theirs['id']}").status_code == 200
    assert project.get(ui.url + f"/ui/deployments/{mine['id']}").status_code == 403
    operator = http()
    assert sign_in(ui, operator, link(ui)).headers["location"] == "/ui/"
    both = operator.get(ui.url + "/ui/").text
    assert mine["id"] in both and theirs["id"] in both
    nowhere = operator.get(ui.url + "/ui/deployments/dep_000000000000000000000000")
    assert nowhere.status_code == 404
    # Another browser's used link opens nothing here; a new one adds to the session: the
    # project's deployments open beside the first one.
    assert sign_in(ui, s, project_link).status_code == 401
    assert s.get(ui.url + f"/ui/deployments/{theirs['id']}").status_code == 403
    fresh = links.mint(ui.secret, ui.url, Scope.project("ui-scope-b"), time.time())
    assert sign_in(ui, s, fresh).status_code == 303
    assert s.get(ui.url + f"/ui/deployments/{theirs['id']}").status_code == 200
    assert s.get(ui.url + f"/ui/deployments/{mine['id']}").status_code == 200


def test_a_link_clicked_on_another_site_opens_the_deployment_and_its_actions_work(
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    browser: Browser,
    page: Page,
    other_site: OtherSite,
) -> None:
    ui = start_dispatcher()
    sandbox.set_time_scale(0.05)
    sandbox.set_faults([PROMOTE_HELD])  # it runs until cancelled
    dep_id = ui.deploy("ui-cross-site")["id"]
    url = link(ui, dep_id)
    other_site.show(page, open=url)
    page.get_by_role("link", name="open").click()
    page.wait_for_url(ui.url + f"/ui/deployments/{dep_id}")
    expect(page.locator("#status")).to_contain_text("running")
    expect(page.locator("#log-state")).to_have_text("live")
    page.reload()  # a reload of a page reached from another site keeps the session
    expect(page.locator("#status")).to_contain_text("running")
    # Back goes to the site the link was on (the link's page left no entry), and the used
    # link, clicked again by this browser, opens the page again.
    page.go_back()
    assert page.url.startswith("http://localhost:")
    page.get_by_role("link", name="open").click()
    page.wait_for_url(ui.url + f"/ui/deployments/{dep_id}")
    while not held(sandbox):  # running, and held at the promote
        page.wait_for_timeout(100)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#status")).to_contain_text("cancelled", timeout=120_000)
    assert ui.get(dep_id)["status"] == "cancelled"
    sandbox.set_faults([])

    # Anyone else who clicks the used link is refused.
    stranger = browser.new_context(viewport=DESKTOP)
    try:
        other = stranger.new_page()
        other_site.show(other, open=url)
        other.get_by_role("link", name="open").click()
        expect(other.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(other.locator("main")).to_contain_text("used already")
    finally:
        stranger.close()


def test_two_links_minted_in_one_second_both_open_once(
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    browser: Browser,
    other_site: OtherSite,
) -> None:
    ui = start_dispatcher()
    dep_id = ui.deploy("ui-two-links")["id"]
    ui.wait_terminal(dep_id)
    now = time.time()
    first, second = (links.mint(ui.secret, ui.url, Scope.deployment(dep_id), now) for _ in range(2))
    assert first != second
    for url, opens in ((first, True), (second, True), (first, False)):
        context = browser.new_context(viewport=DESKTOP)  # another viewer each time
        try:
            viewer = context.new_page()
            other_site.show(viewer, open=url)
            viewer.get_by_role("link", name="open").click()
            if opens:
                viewer.wait_for_url(ui.url + f"/ui/deployments/{dep_id}")
                expect(viewer.locator("#status")).to_contain_text("live")
            else:
                expect(viewer.locator("main")).to_contain_text("used already")
        finally:
            context.close()


def test_the_cli_link_says_what_it_opens_and_a_forged_one_opens_nothing(
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

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "link", *args],
            env=env, cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip

    bare = cli()  # no longer everything
    assert bare.returncode == 2 and "--all" in bare.stderr and "http" not in bare.stdout
    assert cli(dep["id"], "--all").returncode == 2
    printed = cli(dep["id"]).stdout.strip()
    assert ui.secret.decode() not in printed and "scope=deployment:" in printed
    assert "scope=project:ui-cli-link" in cli("--project", "ui-cli-link").stdout
    everything = cli("--all").stdout.strip()
    forged = printed[:-4] + ("0000" if not printed.endswith("0000") else "1111")
    answer = page.goto(forged)
    assert answer is not None and answer.status == 401
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    answer = page.goto(printed)
    page.wait_for_url(ui.url + f"/ui/deployments/{dep['id']}")
    expect(page.locator("#status")).to_contain_text("live")
    page.goto(everything)
    page.wait_for_url(ui.url + "/ui/")
    expect(page.get_by_role("link", name=dep["id"])).to_be_visible()
    signed_in(ui, page, dep["id"])  # a link from the test's own mint, as the kit makes them
