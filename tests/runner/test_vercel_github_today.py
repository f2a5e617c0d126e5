"""The runner on Vercel and GitHub as they are today, end to end against the sandbox (the real
`vercel` and `supabase` CLIs beside it, the real runner process under the loopback audit):

- the Vercel project builds on the Node.js the app's `engines.node` names, else 24.x; an app
  asking for Node 18 is refused before any provider call;
- production behind Vercel login fails the health check naming the login wall (401, and the
  SSO redirect), and ends healthy once the project has a bypass secret, which never shows;
- the secret key reaches `production` only, and a redeploy takes it off the targets an older
  version wrote it to;
- a fine-grained GitHub token lacking Administration write, and a 451 on repository creation,
  each end `failed` with their own message before anything exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.runner.test_deploy import app_copy, assert_live, deploy, step_info
from tests.support.runner import RunnerProcess, RunnerResult
from tests.support.sandbox import SandboxProcess, owned_by
from tests.support.vercel_api import VercelApi, bypass_secret

pytestmark = [pytest.mark.clis, pytest.mark.postgres]
SERVER_ONLY = ("SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY")
PUBLIC = (
    "NEXT_PUBLIC_SUPABASE_URL",
    "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY",
    "NEXT_PUBLIC_SUPABASE_ANON_KEY",
)


def with_engines(build: Path, node: str) -> Path:
    package = json.loads((build / "package.json").read_text())
    package["engines"] = {"node": node}
    (build / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    return build


def keys_on(api: VercelApi, project: str, target: str) -> list[str]:
    listed = api("GET", f"/v10/projects/{project}/env", params={"target": target}).json()
    return sorted(v["key"] for v in listed["envs"])


def health_of(result: RunnerResult) -> dict[str, Any]:
    health: dict[str, Any] = result.result["health"]
    return health


# -- Node ----------------------------------------------------------------------------------------
def test_the_project_builds_on_the_node_the_app_names_or_24_and_secrets_stay_in_production(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name, api = f"node-{unique}", VercelApi(sandbox)
    build = app_copy(tmp_path)
    first = deploy(forge_runner, build, name)
    assert_live(first)
    project = api("GET", f"/v9/projects/{name}").json()
    assert project["nodeVersion"] == "24.x"
    assert project["ssoProtection"] == {"deploymentType": "preview"}  # set at the create
    assert step_info(first, "vercel.project")["node_version"] == "24.x"
    production, preview = keys_on(api, name, "production"), keys_on(api, name, "preview")
    assert set(SERVER_ONLY) <= set(production)
    assert not set(SERVER_ONLY) & set(preview)
    assert set(PUBLIC) <= set(preview)

    second = deploy(forge_runner, with_engines(build, "22.x"), name)
    assert_live(second)
    assert api("GET", f"/v9/projects/{name}").json()["nodeVersion"] == "22.x"
    assert step_info(second, "vercel.project")["node_version"] == "22.x"


def test_an_app_asking_for_node_18_is_refused_before_any_provider_call(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"node18-{unique}"
    build = with_engines(app_copy(tmp_path), "18.x")
    before = len(sandbox.traffic())
    refused = deploy(forge_runner, build, name)
    assert refused.returncode == 2, refused.explain()
    assert refused.result["outcome"] == "bad_input"
    assert 'engines.node "18.x"' in refused.result["error"]
    assert '"24.x"' in refused.result["error"]
    assert len(sandbox.traffic()) == before  # not one provider call
    assert owned_by(sandbox, name) == {"repos": 0, "supabase": 0, "vercel": 0, "deployments": 0}
    planned = forge_runner.run(["plan", "--build-dir", str(build), "--name", name])
    assert planned.returncode == 2 and "engines.node" in planned.result["error"]


# -- env targets ---------------------------------------------------------------------------------
def test_a_redeploy_takes_server_only_variables_off_every_target_but_production(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name, api = f"targets-{unique}", VercelApi(sandbox)
    build = app_copy(tmp_path)
    assert_live(deploy(forge_runner, build, name))
    # As an older forge-deploy left them: one variable on production and preview, and one key
    # split into a production and a preview variable.
    envs = api("GET", f"/v10/projects/{name}/env").json()["envs"]
    by_key = {v["key"]: v for v in envs}
    secret = by_key["SUPABASE_SECRET_KEY"]
    widened = api(
        "PATCH",
        f"/v9/projects/{name}/env/{secret['id']}",
        json={"target": ["production", "preview"]},
    )
    assert widened.status_code == 200, widened.text
    split = api(
        "POST",
        f"/v10/projects/{name}/env",
        json={
            "key": "SUPABASE_SERVICE_ROLE_KEY",
            "value": "sb_secret_left_by_an_older_version",
            "type": "sensitive",
            "target": ["preview"],
        },
    )
    assert split.status_code == 201, split.text
    assert set(SERVER_ONLY) <= set(keys_on(api, name, "preview"))

    again = deploy(forge_runner, build, name)
    assert_live(again)
    assert not set(SERVER_ONLY) & set(keys_on(api, name, "preview"))
    assert set(SERVER_ONLY) <= set(keys_on(api, name, "production"))
    envs = api("GET", f"/v10/projects/{name}/env").json()["envs"]
    for key in SERVER_ONLY:
        assert [v["target"] for v in envs if v["key"] == key] == [["production"]]


# -- protection ----------------------------------------------------------------------------------
def test_protected_production_fails_naming_the_login_wall_and_a_bypass_secret_ends_healthy(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name, api = f"walled-{unique}", VercelApi(sandbox)
    build = app_copy(tmp_path)
    assert_live(deploy(forge_runner, build, name))
    protected = api(
        "PATCH", f"/v9/projects/{name}", json={"ssoProtection": {"deploymentType": "all"}}
    )
    assert protected.status_code == 200, protected.text

    walled = deploy(forge_runner, build, name)
    assert walled.returncode == 3, walled.explain()
    health = health_of(walled)
    app = next(item for item in health["evidence"] if item["check"] == "app")
    assert app["ok"] is False and app["status"] == 401 and app["login_wall"] is True
    assert "behind Vercel authentication" in app["error"]
    assert health["redeploys"] == 0  # a new build cannot open a login wall
    # the owner's protection stays as it was set
    assert api("GET", f"/v9/projects/{name}").json()["ssoProtection"] == {"deploymentType": "all"}

    # a browser-style answer: the SSO redirect to vercel.com is never followed
    sandbox.set_faults(
        [
            {
                "service": "apps",
                "method": "GET",
                "path": rf"^/p/{name}/",
                "action": "status",
                "status": 302,
                "headers": {"location": f"https://vercel.com/sso-api?url=x&nonce={unique}"},
            }
        ]
    )
    try:
        redirected = deploy(forge_runner, build, name)
    finally:
        sandbox.set_faults([])
    assert redirected.returncode == 3, redirected.explain()
    app = next(i for i in health_of(redirected)["evidence"] if i["check"] == "app")
    assert app["login_wall"] is True and "vercel.com/sso-api" in app["error"]

    secret = bypass_secret(api, name)
    opened = deploy(forge_runner, build, name)
    assert_live(opened)
    assert health_of(opened)["ok"] is True
    assert secret not in opened.stdout and secret not in opened.stderr


# -- GitHub --------------------------------------------------------------------------------------
def test_a_token_lacking_administration_write_fails_at_once_and_creates_nothing(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"fgtoken-{unique}"
    made = sandbox.admin(
        "POST", "github/tokens", {"permissions": {"metadata": "read", "contents": "write"}}
    )
    token = made.json()["token"]
    before = len(sandbox.traffic())
    failed = forge_runner.run(
        ["deploy", "--build-dir", str(app_copy(tmp_path)), "--name", name], {"GH_TOKEN": token}
    )
    assert failed.returncode == 1, failed.explain()
    assert failed.result["outcome"] == "failed"
    error = failed.result["error"]
    assert "administration=write" in error
    assert "Administration: write and Contents: write" in error
    assert token not in failed.stdout and token not in failed.stderr
    assert owned_by(sandbox, name) == {"repos": 0, "supabase": 0, "vercel": 0, "deployments": 0}
    calls = [e for e in sandbox.traffic()[before:] if e["service"] == "github"]
    assert [e["method"] for e in calls] == ["GET", "POST"]  # look, then the refused create
    assert all(e["request_headers"]["x-github-api-version"] == "2022-11-28" for e in calls)


def test_a_token_that_may_not_push_fails_before_supabase_or_vercel_make_anything(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"nopush-{unique}"
    permissions = {"metadata": "read", "administration": "write", "contents": "read"}
    token = sandbox.admin("POST", "github/tokens", {"permissions": permissions}).json()["token"]
    failed = forge_runner.run(
        ["deploy", "--build-dir", str(app_copy(tmp_path)), "--name", name], {"GH_TOKEN": token}
    )
    assert failed.returncode == 1, failed.explain()
    assert "Contents: write" in failed.result["error"] and "403" in failed.result["error"]
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 0, "vercel": 0, "deployments": 0}
    assert token not in failed.stdout and token not in failed.stderr


def test_a_451_on_repository_creation_fails_at_once_and_creates_nothing(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"legal-{unique}"
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": r"/orgs/[^/]+/repos$",
                "action": "status",
                "status": 451,
            }
        ]
    )
    try:
        failed = deploy(forge_runner, app_copy(tmp_path), name)
    finally:
        sandbox.set_faults([])
    assert failed.returncode == 1, failed.explain()
    assert failed.result["outcome"] == "failed"
    assert "for legal reasons (451" in failed.result["error"]
    assert "nothing was created" in failed.result["error"]
    assert owned_by(sandbox, name) == {"repos": 0, "supabase": 0, "vercel": 0, "deployments": 0}
