"""The GitHub emulator's REST, GraphQL and git endpoints called directly: GitHub's error bodies,
the counting rate limit, repository settings, topics, branches and commits, pagination, and
every answer checked against github.json."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import requests

from tests.support.openapi import validate
from tests.support.sandbox import SandboxProcess


class GitHub:
    """REST, GraphQL and raw HTTP against the emulator, with the sandbox token or another."""

    def __init__(self, sandbox: SandboxProcess, token: str | None = None) -> None:
        info = sandbox.info["github"]
        self.api, self.graphql_url, self.web = info["api"], info["graphql"], info["git"]
        self.org, self.user = info["org"], info["user"]
        self.token = info["token"] if token is None else token
        self.verify = sandbox.ca_file

    def raw(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, url, verify=self.verify, timeout=30, **kwargs)

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/vnd.github+json", **kwargs.pop("headers", {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.raw(method, self.api + path, headers=headers, **kwargs)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = self.raw(
            "POST",
            self.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"token {self.token}"},
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        answer = self("POST", f"/orgs/{self.org}/repos", json={"name": name, **fields})
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body


def _error(answer: requests.Response, status: int, message: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["message"] == message
    assert body["documentation_url"].startswith("https://docs.github.com/")
    assert body["status"] == str(status)
    return body


def _entry(sandbox: SandboxProcess, name: str) -> dict[str, Any] | None:
    for repo in sandbox.resources()["github"]["repos"]:
        if repo["name"] == name:
            found: dict[str, Any] = repo
            return found
    return None


# -- authentication and errors -----------------------------------------------------------------
def test_bad_or_missing_token_is_401_with_githubs_body(sandbox: SandboxProcess) -> None:
    bad = GitHub(sandbox, token="ghp_" + "x" * 36)("GET", "/user")
    assert bad.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    assert bad.status_code == 401 and bad.headers["x-ratelimit-limit"] == "60"
    _error(GitHub(sandbox, token="")("GET", "/user"), 401, "Requires authentication")
    gh = GitHub(sandbox)
    for scheme in ("token", "Bearer"):
        answer = gh.raw("GET", gh.api + "/user", headers={"Authorization": f"{scheme} {gh.token}"})
        assert answer.status_code == 200 and answer.json()["login"] == gh.user
    basic = base64.b64encode(f"x:{gh.token}".encode()).decode()
    assert gh.raw("GET", gh.api + "/user", headers={"Authorization": f"Basic {basic}"}).ok


def test_missing_repo_route_and_owner_are_404(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    body = _error(gh("GET", f"/repos/{gh.org}/missing-{unique}"), 404, "Not Found")
    assert body["documentation_url"] == "https://docs.github.com/rest/repos/repos#get-a-repository"
    _error(gh("DELETE", f"/repos/{gh.org}/missing-{unique}"), 404, "Not Found")
    _error(gh("GET", "/no/such/route"), 404, "Not Found")
    _error(gh("GET", f"/users/nobody-{unique}"), 404, "Not Found")
    _error(gh("GET", f"/orgs/{gh.user}"), 404, "Not Found")  # a user is not an org
    _error(gh("POST", f"/orgs/nobody-{unique}/repos", json={"name": "x"}), 404, "Not Found")


def test_taken_name_is_422_with_the_exact_body(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    gh.create(f"taken-{unique}")
    again = gh("POST", f"/orgs/{gh.org}/repos", json={"name": f"TAKEN-{unique}"})
    assert again.status_code == 422
    assert again.json() == {
        "message": "Repository creation failed.",
        "errors": [
            {
                "resource": "Repository",
                "code": "custom",
                "field": "name",
                "message": "name already exists on this account",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/repos/repos#create-an-organization-repository",
        "status": "422",
    }


def test_malformed_json_is_400_and_invalid_fields_are_422(
    sandbox: SandboxProcess, unique: str
) -> None:
    gh = GitHub(sandbox)
    _error(gh("POST", f"/orgs/{gh.org}/repos", data=b'{"name": '), 400, "Problems parsing JSON")
    _error(gh("POST", "/user/repos", data=b"not json"), 400, "Problems parsing JSON")
    wrong_type = gh("POST", f"/orgs/{gh.org}/repos", json={"name": unique, "private": "yes"})
    _error(
        wrong_type, 422, "Invalid request.\n\nFor 'properties/private', \"yes\" is not a boolean."
    )
    _error(
        gh("POST", "/user/repos", json={"private": True}),
        422,
        'Invalid request.\n\n"name" wasn\'t supplied.',
    )
    name = f"fields-{unique}"
    gh.create(name)
    _error(gh("PATCH", f"/repos/{gh.org}/{name}", data=b"{"), 400, "Problems parsing JSON")
    assert gh("PATCH", f"/repos/{gh.org}/{name}", json={"archived": 1}).status_code == 422
    assert gh("PUT", f"/repos/{gh.org}/{name}/topics", json={}).status_code == 422
    assert _entry(sandbox, f"{unique}") is None  # nothing was made by the refused creates


# -- rate limit --------------------------------------------------------------------------------
def test_rate_limit_headers_count_down_and_rate_limit_is_free(sandbox: SandboxProcess) -> None:
    gh = GitHub(sandbox)
    first, second = gh("GET", "/user"), gh("GET", f"/orgs/{gh.org}")
    for answer in (first, second):
        for header in ("limit", "remaining", "used", "reset", "resource"):
            assert f"x-ratelimit-{header}" in answer.headers
        assert answer.headers["x-ratelimit-resource"] == "core"
        assert answer.headers["x-ratelimit-limit"] == "5000"
    assert int(second.headers["x-ratelimit-remaining"]) == (
        int(first.headers["x-ratelimit-remaining"]) - 1
    )
    assert int(second.headers["x-ratelimit-used"]) == int(first.headers["x-ratelimit-used"]) + 1
    overview = gh("GET", "/rate_limit")
    again = gh("GET", "/rate_limit")
    assert overview.json()["rate"] == again.json()["rate"] == overview.json()["resources"]["core"]
    assert overview.json()["rate"]["used"] == int(second.headers["x-ratelimit-used"])
    missing = gh("GET", "/repos/nobody/nothing")  # errors count and carry the headers too
    assert int(missing.headers["x-ratelimit-used"]) == overview.json()["rate"]["used"] + 1
    graphql = gh.raw(
        "POST",
        gh.graphql_url,
        json={"query": "{ viewer { login } }"},
        headers={"Authorization": f"bearer {gh.token}"},
    )
    assert graphql.headers["x-ratelimit-resource"] == "graphql"


# -- repositories ------------------------------------------------------------------------------
def test_create_read_update_archive_and_delete(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    name = f"crud-{unique}"
    created = gh(
        "POST",
        f"/orgs/{gh.org}/repos",
        json={"name": name, "private": True, "description": "first"},
    )
    assert created.status_code == 201
    assert created.headers["Location"] == f"{gh.api}/repos/{gh.org}/{name}"
    repo = created.json()
    assert (repo["private"], repo["visibility"], repo["default_branch"]) == (
        True,
        "private",
        "main",
    )
    assert repo["full_name"] == f"{gh.org}/{name}" and repo["owner"]["login"] == gh.org
    assert repo["clone_url"] == f"{gh.web}/{gh.org}/{name}.git"
    assert repo["archived"] is False and repo["topics"] == []
    fetched = gh("GET", f"/repos/{gh.org.upper()}/{name.upper()}").json()
    assert fetched["id"] == repo["id"] and fetched["name"] == name

    patched = gh(
        "PATCH", f"/repos/{gh.org}/{name}", json={"description": "second", "visibility": "public"}
    )
    assert patched.status_code == 200
    assert (patched.json()["description"], patched.json()["private"]) == ("second", False)
    archived = gh("PATCH", f"/repos/{gh.org}/{name}", json={"archived": True}).json()
    assert archived["archived"] is True
    read_only = gh("PATCH", f"/repos/{gh.org}/{name}", json={"description": "third"})
    _error(read_only, 403, "Repository was archived so is read-only.")
    _error(
        gh("PUT", f"/repos/{gh.org}/{name}/topics", json={"names": ["x"]}),
        403,
        "Repository was archived so is read-only.",
    )
    entry = _entry(sandbox, name)
    assert entry is not None
    assert (entry["archived"], entry["private"], entry["description"]) == (True, False, "second")
    assert entry["pushed_commit"] is None

    assert gh("DELETE", f"/repos/{gh.org}/{name}").status_code == 204
    assert gh("GET", f"/repos/{gh.org}/{name}").status_code == 404
    assert _entry(sandbox, name) is None
    assert not (Path(sandbox.state_dir) / "github" / "repos" / gh.org / f"{name}.git").exists()


def test_rename_leaves_a_redirect(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    old, new = f"old-{unique}", f"new-{unique}"
    gh.create(old)
    renamed = gh("PATCH", f"/repos/{gh.org}/{old}", json={"name": new})
    assert renamed.status_code == 200 and renamed.json()["name"] == new
    moved = gh("GET", f"/repos/{gh.org}/{old}", allow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["Location"] == f"{gh.api}/repos/{gh.org}/{new}"
    assert gh("GET", f"/repos/{gh.org}/{old}").json()["name"] == new  # followed
    assert gh("DELETE", f"/repos/{gh.org}/{new}").status_code == 204


def test_topics_round_trip(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    name = f"topics-{unique}"
    gh.create(name)
    put = gh("PUT", f"/repos/{gh.org}/{name}/topics", json={"names": ["Forge-Deploy", "nextjs"]})
    assert put.status_code == 200 and put.json() == {"names": ["forge-deploy", "nextjs"]}
    assert gh("GET", f"/repos/{gh.org}/{name}/topics").json() == put.json()
    assert gh("GET", f"/repos/{gh.org}/{name}").json()["topics"] == ["forge-deploy", "nextjs"]
    entry = _entry(sandbox, name)
    assert entry is not None and entry["topics"] == ["forge-deploy", "nextjs"]
    invalid = gh("PUT", f"/repos/{gh.org}/{name}/topics", json={"names": ["not valid"]})
    assert invalid.status_code == 422 and all(isinstance(e, str) for e in invalid.json()["errors"])
    assert gh("PUT", f"/repos/{gh.org}/{name}/topics", json={"names": []}).json() == {"names": []}
    _error(gh("GET", f"/repos/{gh.org}/missing-{unique}/topics"), 404, "Not Found")


def test_branches_and_commits_come_from_the_git_repository(
    sandbox: SandboxProcess, unique: str
) -> None:
    gh = GitHub(sandbox)
    empty, seeded = f"empty-{unique}", f"seeded-{unique}"
    gh.create(empty)
    _error(gh("GET", f"/repos/{gh.org}/{empty}/commits/main"), 409, "Git Repository is empty.")
    _error(gh("GET", f"/repos/{gh.org}/{empty}/branches/main"), 404, "Branch not found")
    gh.create(seeded, auto_init=True, description="hello")
    branch = gh("GET", f"/repos/{gh.org}/{seeded}/branches/main").json()
    assert branch["name"] == "main" and branch["protected"] is False
    sha = branch["commit"]["sha"]
    commit = gh("GET", f"/repos/{gh.org}/{seeded}/commits/{sha}").json()
    assert commit["sha"] == sha and commit["parents"] == []
    assert commit["commit"]["message"] == "Initial commit"
    assert [f["filename"] for f in commit["files"]] == ["README.md"]
    assert gh("GET", f"/repos/{gh.org}/{seeded}/commits/heads/main").json()["sha"] == sha
    assert gh("GET", f"/repos/{gh.org}/{seeded}/commits/main").json()["sha"] == sha
    _error(
        gh("GET", f"/repos/{gh.org}/{seeded}/commits/nope"), 422, "No commit found for SHA: nope"
    )
    entry = _entry(sandbox, seeded)
    assert entry is not None and entry["pushed_commit"] == sha


def test_lists_page_with_link_headers(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    names = [f"page-{unique}-{i}" for i in range(3)]
    for name in names:
        gh.create(name, private=True)
    listed = gh("GET", f"/orgs/{gh.org}/repos", params={"per_page": 2, "sort": "full_name"})
    assert listed.status_code == 200 and len(listed.json()) == 2
    links = requests.utils.parse_header_links(listed.headers["Link"])
    rels = {link["rel"]: link["url"] for link in links}
    assert set(rels) == {"next", "last"} and "page=2" in rels["next"]
    seen: list[str] = []
    url: str | None = f"{gh.api}/orgs/{gh.org}/repos?per_page=2&sort=full_name"
    while url:
        page = gh.raw("GET", url, headers={"Authorization": f"token {gh.token}"})
        seen += [repo["name"] for repo in page.json()]
        following = {
            link["rel"]: link["url"]
            for link in requests.utils.parse_header_links(page.headers.get("Link", ""))
        }
        url = following.get("next")
    assert [n for n in seen if n in names] == names
    mine: list[str] = []  # the session holds hundreds of repos by now: follow every page
    url = f"{gh.api}/user/repos?per_page=100&visibility=private"
    while url:
        page = gh.raw("GET", url, headers={"Authorization": f"token {gh.token}"})
        mine += [repo["name"] for repo in page.json()]
        following = {
            link["rel"]: link["url"]
            for link in requests.utils.parse_header_links(page.headers.get("Link", ""))
        }
        url = following.get("next")
    assert set(names) <= set(mine)
    assert gh("GET", "/user/repos", params={"type": "all", "visibility": "all"}).status_code == 422


def test_user_and_org_accounts(sandbox: SandboxProcess) -> None:
    gh = GitHub(sandbox)
    me = gh("GET", "/user").json()
    assert me["login"] == gh.user and me["user_view_type"] == "private"
    org = gh("GET", f"/users/{gh.org}").json()
    assert org["type"] == "Organization" and org["node_id"]
    assert gh("GET", f"/users/{gh.user}").json()["type"] == "User"
    assert gh("GET", f"/orgs/{gh.org}").json()["login"] == gh.org


# -- GraphQL and git over HTTP -----------------------------------------------------------------
def test_graphql_create_view_and_not_found(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    owner = gh("GET", f"/users/{gh.org}").json()["node_id"]
    name = f"gql-{unique}"
    created = gh.graphql(
        "mutation RepositoryCreate($input: CreateRepositoryInput!) { createRepository(input: "
        "$input) { repository { id name owner { login } url } } }",
        input={
            "name": name,
            "visibility": "PRIVATE",
            "ownerId": owner,
            "hasIssuesEnabled": True,
            "hasWikiEnabled": True,
        },
    )
    repository = created["data"]["createRepository"]["repository"]
    assert repository["url"] == f"{gh.web}/{gh.org}/{name}"
    assert repository["id"] == gh("GET", f"/repos/{gh.org}/{name}").json()["node_id"]
    view = (
        "query RepositoryInfo($owner: String!, $name: String!) { repository(owner: $owner, "
        "name: $name) {url,isPrivate} }"
    )
    assert gh.graphql(view, owner=gh.org, name=name) == {
        "data": {"repository": {"url": repository["url"], "isPrivate": True}}
    }
    missing = gh.graphql(view, owner=gh.org, name=f"missing-{unique}")
    assert missing["data"] == {"repository": None}
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    assert missing["errors"][0]["path"] == ["repository"]
    bad = GitHub(sandbox, token="nope").raw(
        "POST",
        gh.graphql_url,
        json={"query": "{viewer{id}}"},
        headers={"Authorization": "bearer nope"},
    )
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"


def test_git_endpoints_demand_the_token(sandbox: SandboxProcess, unique: str) -> None:
    gh = GitHub(sandbox)
    name = f"smart-{unique}"
    gh.create(name, private=True)
    refs = f"{gh.web}/{gh.org}/{name}.git/info/refs?service=git-receive-pack"
    anonymous = gh.raw("GET", refs)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="GitHub"'
    assert gh.raw("GET", refs, auth=("x-access-token", "wrong")).status_code == 401
    good = gh.raw("GET", refs, auth=("anyone", gh.token))
    assert good.status_code == 200
    assert good.headers["Content-Type"] == "application/x-git-receive-pack-advertisement"
    missing = f"{gh.web}/{gh.org}/missing-{unique}.git/info/refs?service=git-upload-pack"
    assert gh.raw("GET", missing, auth=("x-access-token", gh.token)).status_code == 404
    assert gh.raw("GET", missing).status_code == 401  # existence is not revealed


def test_every_github_answer_here_validates_against_the_document(
    sandbox: SandboxProcess, unique: str
) -> None:
    gh = GitHub(sandbox)
    name = f"spec-{unique}"
    gh.create(name, auto_init=True, private=True)
    for path in ("", "/topics", "/branches/main", "/commits/main"):
        assert gh("GET", f"/repos/{gh.org}/{name}{path}").ok
    gh("PUT", f"/repos/{gh.org}/{name}/topics", json={"names": ["a"]})
    gh("PATCH", f"/repos/{gh.org}/{name}", json={"description": "d", "archived": True})
    gh("GET", f"/orgs/{gh.org}/repos", params={"per_page": 1})
    gh("GET", "/user/repos", params={"per_page": 1})
    gh("POST", "/user/repos", json={"name": name, "private": True})
    gh("GET", "/user")
    gh("GET", f"/orgs/{gh.org}")
    gh("GET", "/rate_limit")
    gh("POST", f"/orgs/{gh.org}/repos", json={"name": name})  # 422
    gh("DELETE", f"/repos/{gh.user}/{name}")
    gh("DELETE", f"/repos/{gh.org}/{name}")
    gh("GET", f"/repos/{gh.org}/{name}")  # 404
    entries = [
        e
        for e in sandbox.traffic()
        if e["service"] == "github"
        and (
            name in e["path"]
            or e["path"]
            in (
                "/api/v3/user",
                f"/api/v3/orgs/{gh.org}",
                "/api/v3/rate_limit",
                "/api/v3/user/repos",
                f"/api/v3/orgs/{gh.org}/repos",
            )
        )
    ]
    report = validate(entries)
    assert not report.failures, "\n".join(report.failures)
    assert len(report.validated["github"]) >= 15
