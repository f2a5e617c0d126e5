"""The GitHub emulator as GitHub answers today: a request without `X-GitHub-Api-Version` is
taken as 2022-11-28, 2026-03-10 is served too, an unknown version is refused 400; a fine-grained
token is refused what its permissions do not reach with 403 and `X-Accepted-GitHub-Permissions`
(REST, and git over HTTP asking `contents`); a 451 on repository creation (a fault rule) comes
in GitHub's error body. The real `gh` judges the unversioned requests it sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.test_github_api import GitHub
from tests.support.clis import CliRunner
from tests.support.openapi import validate
from tests.support.sandbox import SandboxProcess


def _token(sandbox: SandboxProcess, **permissions: str) -> str:
    made = sandbox.admin("POST", "github/tokens", {"permissions": permissions})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert isinstance(token, str) and token.startswith("github_pat_")
    return token


def test_the_api_version_defaults_to_2022_11_28_and_an_unknown_one_is_refused(
    sandbox: SandboxProcess,
) -> None:
    gh = GitHub(sandbox)
    plain = gh("GET", f"/orgs/{gh.org}")
    assert plain.status_code == 200
    assert plain.headers["x-github-api-version-selected"] == "2022-11-28"
    newer = gh("GET", f"/orgs/{gh.org}", headers={"X-GitHub-Api-Version": "2026-03-10"})
    assert newer.headers["x-github-api-version-selected"] == "2026-03-10"
    unknown = gh("GET", f"/orgs/{gh.org}", headers={"X-GitHub-Api-Version": "2020-01-01"})
    assert unknown.status_code == 400
    assert "2020-01-01" in unknown.json()["message"]


def test_a_fine_grained_token_is_refused_what_it_lacks_naming_the_permission(
    sandbox: SandboxProcess, unique: str
) -> None:
    reader = GitHub(sandbox, token=_token(sandbox, metadata="read"))
    name = f"fg-{unique}"
    refused = reader("POST", f"/orgs/{reader.org}/repos", json={"name": name})
    assert refused.status_code == 403
    assert refused.json()["message"] == "Resource not accessible by personal access token"
    assert refused.headers["x-accepted-github-permissions"] == "administration=write"
    assert "x-oauth-scopes" not in refused.headers
    listed = [r["name"] for r in sandbox.resources()["github"]["repos"]]
    assert name not in listed  # nothing was created
    assert reader("GET", f"/orgs/{reader.org}").status_code == 200

    writer = GitHub(sandbox, token=_token(sandbox, administration="write", contents="read"))
    assert writer("POST", f"/orgs/{writer.org}/repos", json={"name": name}).status_code == 201
    refs = f"{writer.web}/{writer.org}/{name}.git/info/refs?service=git-receive-pack"
    assert writer.raw("GET", refs, auth=("x-access-token", writer.token)).status_code == 403
    fetch = f"{writer.web}/{writer.org}/{name}.git/info/refs?service=git-upload-pack"
    assert writer.raw("GET", fetch, auth=("x-access-token", writer.token)).status_code == 200
    pusher = _token(sandbox, contents="write")
    assert writer.raw("GET", refs, auth=("x-access-token", pusher)).status_code == 200
    assert writer("DELETE", f"/repos/{writer.org}/{name}").status_code == 204

    bad = sandbox.admin("POST", "github/tokens", {"permissions": {"pages": "write"}})
    assert bad.status_code == 400 and "pages" in bad.json()["error"]


def test_a_451_on_repository_creation_comes_in_githubs_error_body(
    sandbox: SandboxProcess, unique: str
) -> None:
    gh = GitHub(sandbox)
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": r"/orgs/[^/]+/repos$",
                "action": "status",
                "status": 451,
                "times": 1,
            }
        ]
    )
    try:
        blocked = gh("POST", f"/orgs/{gh.org}/repos", json={"name": f"legal-{unique}"})
    finally:
        sandbox.set_faults([])
    assert blocked.status_code == 451
    assert blocked.json()["status"] == "451"


@pytest.mark.clis
def test_gh_sends_no_version_and_is_served_as_2022_11_28(
    sandbox: SandboxProcess, cli: CliRunner, tmp_path: Path, unique: str
) -> None:
    start = len(sandbox.traffic())
    shown = cli.run(["gh", "api", f"orgs/{sandbox.info['github']['org']}"], cwd=tmp_path)
    assert shown.returncode == 0
    entries = [e for e in sandbox.traffic()[start:] if e["service"] == "github"]
    assert entries and all(
        e["response_headers"]["x-github-api-version-selected"] == "2022-11-28" for e in entries
    )
    assert not validate(entries).failures
