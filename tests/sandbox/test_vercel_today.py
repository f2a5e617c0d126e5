"""The Vercel emulator as Vercel is today (late 2026): Node 24 for new projects and no builds on
Node 20 or older, Standard protection on new projects (previews behind Vercel login, answered
with 401 or the SSO redirect), automation bypass secrets, and `POST /v11/projects` refusing a
`nodeVersion`. The 2025 behaviour stays one named setting (`defaults`), per project through the
admin API and per sandbox through `forge-sandbox serve --vercel-defaults 2025`: both run here,
the real `vercel` CLI judging the refused build.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.clis import CliRunner
from tests.support.openapi import validate
from tests.support.sandbox import SandboxProcess
from tests.support.vercel_api import (
    VercelApi,
    VercelCli,
    bypass_secret,
    fetch,
    inline,
    production_url,
    write_site,
)

PAGE = b"<!doctype html><h1>today</h1>\n"
SANDBOX_CLI = (sys.executable, "-m", "sandbox.cli")
BROWSER = {"accept": "text/html,application/xhtml+xml", "user-agent": "Mozilla/5.0"}


def _package(engines: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "app", "private": True}
    if engines is not None:
        body["engines"] = {"node": engines}
    return inline("package.json", json.dumps(body).encode())


def _build(api: VercelApi, name: str, engines: str | None = None, **body: Any) -> Any:
    files = [inline("index.html", PAGE), _package(engines)]
    return api.wait(api.deploy(name, files, **body)["id"], alias=False)


# -- Node --------------------------------------------------------------------------------------
def test_a_new_project_gets_node_24_and_takes_a_node_version_only_through_patch(
    sandbox: SandboxProcess, unique: str
) -> None:
    api, name = VercelApi(sandbox), f"node-{unique}"
    refused = api("POST", "/v11/projects", json={"name": name, "nodeVersion": "22.x"})
    assert refused.status_code == 400
    assert "nodeVersion" in refused.json()["error"]["message"]
    api.create_project(name)
    project = api("GET", f"/v9/projects/{name}").json()
    assert (project["nodeVersion"], project["ssoProtection"]) == (
        "24.x",
        {"deploymentType": "preview"},
    )
    assert api("PATCH", f"/v9/projects/{name}", json={"nodeVersion": "22.x"}).status_code == 200
    assert api("GET", f"/v9/projects/{name}").json()["nodeVersion"] == "22.x"
    bad = api("PATCH", f"/v9/projects/{name}", json={"nodeVersion": "19.x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    assert api("DELETE", f"/v9/projects/{name}").status_code == 204


def test_builds_on_node_20_or_older_fail_with_vercels_error_and_supported_ones_build(
    sandbox: SandboxProcess, unique: str
) -> None:
    api, name = VercelApi(sandbox), f"old-node-{unique}"
    api.create_project(name)
    api("PATCH", f"/v9/projects/{name}", json={"nodeVersion": "20.x"}).raise_for_status()
    on_20 = _build(api, name, target="production")
    assert (on_20["readyState"], on_20["errorCode"]) == ("ERROR", "BUILD_FAILED")
    assert 'discontinued Node.js Version: "20.x"' in on_20["errorMessage"]
    assert "Project Settings" in on_20["errorMessage"]
    engines_18 = _build(api, name, "18.x", target="production")
    assert engines_18["readyState"] == "ERROR"
    assert '"engines": { "node": "24.x" }' in engines_18["errorMessage"]
    # engines.node wins over the project setting, as on Vercel
    assert _build(api, name, ">=22", target="production")["readyState"] == "READY"
    api("PATCH", f"/v9/projects/{name}", json={"nodeVersion": "24.x"}).raise_for_status()
    assert _build(api, name, target="production")["readyState"] == "READY"
    assert api("DELETE", f"/v9/projects/{name}").status_code == 204


@pytest.mark.clis
def test_the_vercel_cli_reports_a_build_refused_for_its_node_version(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, name = VercelCli(cli), f"cli-node-{unique}"
    package = json.dumps({"name": name, "engines": {"node": "18.x"}})
    site = write_site(tmp_path / "site", {"index.html": "<h1>old</h1>\n", "package.json": package})
    vercel("link", "--yes", "--project", name, cwd=site)
    done = vercel("deploy", "--yes", "--prod", cwd=site, check=False)
    assert done.returncode == 1, done.stderr
    api = VercelApi(sandbox)
    failed = api.deployment(done.stdout.strip())  # stdout is exactly the deployment's URL
    assert (failed["readyState"], failed["errorCode"]) == ("ERROR", "BUILD_FAILED")
    assert 'discontinued Node.js Version: "18.x"' in failed["errorMessage"]
    api("DELETE", f"/v9/projects/{name}").raise_for_status()


# -- protection --------------------------------------------------------------------------------
def test_previews_are_behind_vercel_login_and_a_bypass_secret_opens_them(
    sandbox: SandboxProcess, unique: str
) -> None:
    api, name = VercelApi(sandbox), f"guard-{unique}"
    production = _build(api, name, target="production")
    preview = _build(api, name)
    assert fetch(sandbox, production_url(sandbox, name)).status_code == 200
    assert fetch(sandbox, f"{production['url']}/").status_code == 200
    walled = fetch(sandbox, f"{preview['url']}/")
    assert walled.status_code == 401 and "_vercel_sso_nonce" in walled.headers["set-cookie"]
    redirected = fetch(sandbox, f"{preview['url']}/", BROWSER, follow=False)
    assert redirected.status_code == 302
    sso = urlsplit(redirected.headers["location"])
    assert (sso.scheme, sso.netloc, sso.path) == ("https", "vercel.com", "/sso-api")
    assert parse_qs(sso.query)["url"] == [f"https://{preview['url']}/"]
    secret = bypass_secret(api, name)
    assert fetch(sandbox, f"{preview['url']}/", {"x-vercel-protection-bypass": secret}).text == (
        PAGE.decode()
    )
    assert (
        fetch(sandbox, f"{preview['url']}/", {"x-vercel-protection-bypass": "0" * 32}).status_code
        == 401
    )
    # protected production: every URL, the production domain too
    api("PATCH", f"/v9/projects/{name}", json={"ssoProtection": {"deploymentType": "all"}})
    assert fetch(sandbox, production_url(sandbox, name)).status_code == 401
    bypass = {"x-vercel-protection-bypass": secret}
    assert fetch(sandbox, production_url(sandbox, name), bypass).status_code == 200
    assert api("GET", f"/v9/projects/{name}").json()["protectionBypass"][secret]["scope"] == (
        "automation-bypass"
    )
    revoked = api(
        "PATCH", f"/v1/projects/{name}/protection-bypass", json={"revoke": {"secret": secret}}
    )
    assert revoked.json()["protectionBypass"] == {}
    assert fetch(sandbox, production_url(sandbox, name), bypass).status_code == 401
    api("PATCH", f"/v9/projects/{name}", json={"ssoProtection": None}).raise_for_status()
    assert fetch(sandbox, f"{preview['url']}/").status_code == 200
    bad = api("PATCH", f"/v9/projects/{name}", json={"ssoProtection": {"deploymentType": "x"}})
    assert bad.status_code == 400
    assert api("DELETE", f"/v9/projects/{name}").status_code == 204


# -- the 2025 behaviour: per project, and per sandbox ----------------------------------------
def test_a_project_switched_to_the_2025_defaults_builds_on_node_20(
    sandbox: SandboxProcess, unique: str
) -> None:
    api, name = VercelApi(sandbox), f"node-2025-{unique}"
    api.create_project(name)
    switched = sandbox.admin("PUT", f"vercel/projects/{name}/defaults", {"defaults": "2025"})
    assert switched.json() == {"defaults": "2025"}
    assert _build(api, name, "20.x", target="production")["readyState"] == "READY"
    assert (
        sandbox.admin("PUT", f"vercel/projects/{name}/defaults", {"defaults": "x"}).status_code
        == 400
    )
    back = sandbox.admin("PUT", f"vercel/projects/{name}/defaults", {"defaults": "2026"})
    assert back.json() == {"defaults": "2026"}
    assert _build(api, name, "20.x", target="production")["readyState"] == "ERROR"
    assert sandbox.admin("GET", "vercel/projects/prj_missing/defaults").status_code == 404
    assert api("DELETE", f"/v9/projects/{name}").status_code == 204


def test_the_serve_flag_gives_every_new_project_the_2025_defaults(
    test_root: Path, postgres_url: str, unique: str
) -> None:
    handle = SandboxProcess(test_root / f"sandbox-v2025-{unique}", postgres_url, time_scale=0)
    info = handle.start(extra=["--vercel-defaults", "2025"])
    try:
        assert info["vercel"]["defaults"] == "2025"
        api, name = VercelApi(handle), f"old-{unique}"
        preview = _build(api, name)
        project = api("GET", f"/v9/projects/{name}").json()
        assert (project["nodeVersion"], project["ssoProtection"]) == ("20.x", None)
        assert preview["readyState"] == "READY"
        assert fetch(handle, f"{preview['url']}/").status_code == 200  # no protection
    finally:
        assert handle.stop() == 0
    bad = subprocess.run(
        [*SANDBOX_CLI, "serve", "--vercel-defaults", "2024", "--state-dir", str(test_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "--vercel-defaults" in bad.stderr


def test_every_new_answer_validates_against_the_document(
    sandbox: SandboxProcess, unique: str
) -> None:
    api, name = VercelApi(sandbox), f"doc-{unique}"
    start = len(sandbox.traffic())
    api.create_project(name)
    api("PATCH", f"/v9/projects/{name}", json={"nodeVersion": "24.x"})
    api("PATCH", f"/v9/projects/{name}", json={"ssoProtection": {"deploymentType": "all"}})
    bypass_secret(api, name)
    api("GET", f"/v9/projects/{name}")
    project_id = api("GET", f"/v9/projects/{name}").json()["id"]
    api("GET", "/v6/deployments", params={"projectId": project_id})
    api("DELETE", f"/v9/projects/{name}")
    entries = [e for e in sandbox.traffic()[start:] if e["service"] == "vercel"]
    report = validate(entries)
    assert not report.failures, "\n".join(report.failures)
    assert len(report.validated["vercel"]) == len(entries) - 1  # protection-bypass: no excerpt
