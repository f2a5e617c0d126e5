"""The Vercel emulator driven by the real `vercel` CLI 58.10.0: link, env, deploy (inline and
uploaded files), READY-but-broken deployments, staged production builds and promotion,
project removal, and what the CLI shows for bad tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.clis import CliRunner
from tests.support.sandbox import SandboxProcess
from tests.support.vercel_api import (
    VercelApi,
    VercelCli,
    deployments_of,
    fetch,
    production_url,
    sha1,
    write_site,
)

pytestmark = pytest.mark.clis


def _project_id(site: Path) -> str:
    linked: dict[str, str] = json.loads((site / ".vercel" / "project.json").read_text())
    return linked["projectId"]


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    body = entry.get("request_body")
    return body if isinstance(body, dict) else {}


def _deploy(vercel: VercelCli, site: Path, *flags: str) -> str:
    """`vercel deploy --yes` and the URL it printed (stdout is exactly that URL)."""
    done = vercel("deploy", "--yes", *flags, cwd=site)
    url = done.stdout.strip()
    assert url.startswith("https://") and "\n" not in url, done.stdout
    return url


def test_link_env_and_deploy_an_html_site_then_remove_the_project(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, api, name = VercelCli(cli), VercelApi(sandbox), f"html-{unique}"
    page = f"<!doctype html><h1>hello {unique}</h1>\n"
    site = write_site(tmp_path / "site", {"index.html": page})

    vercel("link", "--yes", "--project", name, cwd=site)
    project_id = _project_id(site)
    assert {"id": project_id, "name": name} in sandbox.resources()["vercel"]["projects"]

    for value in ("first", "second"):
        add = ("env", "add", "GREETING", "production", "--force", "--no-sensitive")
        vercel(*add, cwd=site, input=f"{value}\n")
    vercel("env", "add", "TOKEN", "production", "--force", cwd=site, input="hidden-value\n")
    listed = json.loads(vercel("env", "ls", "--json", cwd=site).stdout)
    keys = sorted(env["key"] for env in listed["envs"])
    assert keys == ["GREETING", "TOKEN"]  # the second add overrode, it did not duplicate
    pulled = api("GET", f"/v3/env/pull/{project_id}/production").json()["env"]
    assert pulled["GREETING"] == "second"
    inventory = [e for e in sandbox.resources()["vercel"]["env"] if e["project"] == name]
    token = next(e for e in inventory if e["key"] == "TOKEN")
    assert token["type"] == "sensitive" and "value" not in token

    url = _deploy(vercel, site, "--prod")
    served = fetch(sandbox, url)
    assert served.status_code == 200 and served.text == page
    assert served.headers["content-type"].startswith("text/html")
    assert fetch(sandbox, production_url(sandbox, name)).text == page
    creates = [
        e for e in sandbox.traffic() if e["method"] == "POST" and e["path"] == "/v13/deployments"
    ]
    sent = [e for e in creates if _body(e).get("name") == name]
    assert sent[-1]["status"] == 200
    assert all("data" in f for f in sent[-1]["request_body"]["files"])  # inlined, no upload
    (deployment,) = deployments_of(sandbox, name)
    assert deployment["readyState"] == "READY" and deployment["aliasAssigned"]

    removed = vercel("project", "rm", name, cwd=tmp_path, input="y\n")
    assert "removed" in removed.stderr
    assert name not in {p["name"] for p in sandbox.resources()["vercel"]["projects"]}
    assert deployments_of(sandbox, name) == []
    assert fetch(sandbox, url).status_code == 404


def test_deploy_with_a_css_file_uploads_the_missing_files_first(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, name = VercelCli(cli), f"css-{unique}"
    css = f"h1 {{ color: #{unique[:6]}; }}\n"
    page = '<link rel="stylesheet" href="style.css"><h1>styled</h1>\n'
    site = write_site(tmp_path / "site", {"index.html": page, "style.css": css})
    vercel("link", "--yes", "--project", name, cwd=site)

    url = _deploy(vercel, site, "--prod")

    assert fetch(sandbox, url).text == page
    style = fetch(sandbox, f"{url}/style.css")
    assert style.status_code == 200 and style.text == css
    assert style.headers["content-type"].startswith("text/css")
    assert fetch(sandbox, f"{url}/nope.css").status_code == 404
    traffic = sandbox.traffic()
    missing = [
        e
        for e in traffic
        if e["path"] == "/v13/deployments" and e["status"] == 400 and _body(e).get("name") == name
    ]
    assert missing and missing[-1]["response_body"]["error"]["code"] == "missing_files"
    assert sha1(css.encode()) in missing[-1]["response_body"]["error"]["missing"]
    uploads = [
        e
        for e in traffic
        if e["path"] == "/v2/files"
        and e["request_headers"].get("x-now-digest") == sha1(css.encode())
    ]
    assert uploads and uploads[-1]["status"] == 200


def test_a_deployment_missing_a_required_env_var_is_ready_but_serves_500(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, name = VercelCli(cli), f"envcheck-{unique}"
    site = write_site(
        tmp_path / "site",
        {
            "index.html": "<h1>needs env</h1>\n",
            ".env.example": "# required\nDATABASE_URL=\nAPI_SECRET=changeme\n\n",
        },
    )
    vercel("link", "--yes", "--project", name, cwd=site)
    vercel("env", "add", "DATABASE_URL", "production", "--force", cwd=site, input="postgres://x\n")

    broken = _deploy(vercel, site, "--prod")  # the CLI reports success: the build is READY

    answer = fetch(sandbox, broken)
    assert answer.status_code == 500
    assert "API_SECRET" in answer.text and "DATABASE_URL" not in answer.text
    assert fetch(sandbox, f"{broken}/index.html").status_code == 500
    assert all(d["readyState"] == "READY" for d in deployments_of(sandbox, name))

    vercel("env", "add", "API_SECRET", "production", "--force", cwd=site, input="s3cret\n")
    fixed = _deploy(vercel, site, "--prod")
    assert fetch(sandbox, fixed).status_code == 200
    assert fetch(sandbox, production_url(sandbox, name)).text == "<h1>needs env</h1>\n"
    assert fetch(sandbox, broken).status_code == 500  # an old build keeps its env snapshot


def test_staged_production_build_is_promoted_without_a_rebuild(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, api, name = VercelCli(cli), VercelApi(sandbox), f"stage-{unique}"
    site = write_site(tmp_path / "site", {"index.html": "<h1>v1</h1>\n"})
    vercel("link", "--yes", "--project", name, cwd=site)
    live = _deploy(vercel, site, "--prod")
    assert fetch(sandbox, production_url(sandbox, name)).text == "<h1>v1</h1>\n"

    (site / "index.html").write_text("<h1>v2</h1>\n")
    staged_url = _deploy(vercel, site, "--prod", "--skip-domain")
    staged = api.deployment(staged_url.removeprefix("https://"))
    assert staged["readyState"] == "READY" and staged["readySubstate"] == "STAGED"
    assert staged["autoAssignCustomDomains"] is False
    assert staged["aliasAssigned"] is True  # the CLI waits for it; no production alias though
    assert api.production_alias_of(name) not in staged["alias"]
    assert fetch(sandbox, staged_url).text == "<h1>v2</h1>\n"
    assert fetch(sandbox, production_url(sandbox, name)).text == "<h1>v1</h1>\n"
    builds_before = len(deployments_of(sandbox, name))

    promoted = vercel("promote", staged["id"], "--yes", cwd=site)
    assert "promoted" in promoted.stderr

    answer = fetch(sandbox, production_url(sandbox, name))
    assert answer.text == "<h1>v2</h1>\n"
    assert answer.headers["x-vercel-id"].endswith(staged["id"])
    assert len(deployments_of(sandbox, name)) == builds_before  # no new build
    after = api.deployment(staged["id"])
    assert after["readySubstate"] == "PROMOTED"
    assert api.production_alias_of(name) in after["alias"]
    project = api("GET", f"/v9/projects/{name}").json()
    assert project["targets"]["production"]["id"] == staged["id"]
    assert project["lastAliasRequest"]["jobStatus"] == "succeeded"
    assert fetch(sandbox, live).text == "<h1>v1</h1>\n"  # the old build is still reachable


def test_the_cli_reports_a_bad_token_and_an_unknown_project(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel = VercelCli(cli)
    args = [a if a != sandbox.info["vercel"]["token"] else "NotTheToken0" for a in cli.vercel_args]
    refused = cli.run(["vercel", *args, "project", "ls"], cwd=tmp_path, check=False)
    assert refused.returncode == 1
    assert "token" in refused.stderr and "not valid" in refused.stderr
    assert any(e["path"] == "/v2/user" and e["status"] == 403 for e in sandbox.traffic())

    gone = vercel("project", "rm", f"never-{unique}", cwd=tmp_path, input="y\n", check=False)
    assert gone.returncode == 1 and "No such project exists" in gone.stderr


def test_preview_and_prebuilt_deployments_complete(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    vercel, api, name = VercelCli(cli), VercelApi(sandbox), f"prebuilt-{unique}"
    site = write_site(tmp_path / "site", {"index.html": "<h1>pre</h1>\n", "a.css": "a{}\n"})
    vercel("link", "--yes", "--project", name, cwd=site)

    preview = _deploy(vercel, site)  # no --prod: a preview, which never takes production
    found = api.deployment(preview.removeprefix("https://"))
    assert "target" not in found and found["aliasAssigned"] is True
    assert fetch(sandbox, production_url(sandbox, name)).status_code == 404

    vercel("build", "--prod", "--yes", cwd=site)
    assert (site / ".vercel" / "output" / "static" / "index.html").exists()
    url = _deploy(vercel, site, "--prebuilt", "--prod")
    assert fetch(sandbox, url).text == "<h1>pre</h1>\n"
    assert fetch(sandbox, f"{url}/a.css").text == "a{}\n"
    assert fetch(sandbox, production_url(sandbox, name)).text == "<h1>pre</h1>\n"
