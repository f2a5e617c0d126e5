"""The GitHub emulator's parts without a server: rate-limit budget, body checks, the bare
repositories (real git), and GraphQL requests run straight through the schema."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox.clock import Clock
from sandbox.context import Context, Identity, Urls
from sandbox.faults import FaultBook
from sandbox.github import bare, gql, validation
from sandbox.github.accounts import Accounts
from sandbox.github.errors import GitHubError
from sandbox.github.gql_resolvers import Env
from sandbox.github.ratelimit import RateLimiter
from sandbox.github.repos import Repos
from sandbox.github.shapes import Shapes


# -- rate limit ------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_budget_counts_refuses_when_spent_and_resets_after_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    first = limiter.spend("tok", "core", limit=3)
    assert first.allowed and first.headers()["x-ratelimit-remaining"] == "2"
    assert first.headers()["x-ratelimit-reset"] == str(1_000_000 + 3600)
    assert limiter.peek("tok", "core", limit=3).budget.used == 1  # peeking is free
    limiter.spend("tok", "core", limit=3)
    third = limiter.spend("tok", "core", limit=3)
    assert third.allowed and third.budget.remaining == 0
    refused = limiter.spend("tok", "core", limit=3)
    assert not refused.allowed and refused.headers()["x-ratelimit-used"] == "3"
    assert limiter.spend("tok", "graphql", limit=3).allowed  # another resource, another budget
    clock.t += 3600
    fresh = limiter.spend("tok", "core", limit=3)
    assert fresh.allowed and fresh.budget.used == 1 and fresh.budget.reset == int(clock.t) + 3600


def test_rate_limit_overview_mirrors_core_in_rate() -> None:
    limiter = RateLimiter(FakeClock())
    limiter.spend("tok", "core")
    overview: dict[str, Any] = limiter.overview("tok")
    assert overview["rate"] == overview["resources"]["core"]
    assert overview["rate"]["used"] == 1 and overview["rate"]["limit"] == 5000


# -- request bodies ----------------------------------------------------------------------------
def test_repository_names_are_rewritten_like_github() -> None:
    assert validation.repo_name("my repo!") == "my-repo-"
    assert validation.repo_name("app.git") == "app"
    for bad in ("", ".", "..", "x" * 101):
        with pytest.raises(GitHubError) as caught:
            validation.repo_name(bad)
        assert caught.value.status == 422
        assert caught.value.message == "Repository creation failed."


def test_bodies_are_checked_with_githubs_invalid_request_wording() -> None:
    with pytest.raises(GitHubError) as caught:
        validation.check({"name": "x", "private": "yes"}, validation.CREATE, ("name",))
    assert caught.value.status == 422
    assert caught.value.message == (
        "Invalid request.\n\nFor 'properties/private', \"yes\" is not a boolean."
    )
    with pytest.raises(GitHubError) as caught:
        validation.check({}, validation.CREATE, ("name",))
    assert caught.value.message == 'Invalid request.\n\n"name" wasn\'t supplied.'
    with pytest.raises(GitHubError) as caught:
        validation.check({"name": "x", "visibility": "secret"}, validation.CREATE)
    assert "is not a member of" in caught.value.message
    with pytest.raises(GitHubError) as caught:
        validation.parse_json(b"{nope")
    assert (caught.value.status, caught.value.message) == (400, "Problems parsing JSON")
    kept = validation.check({"name": "x", "unknown": 1, "description": None}, validation.CREATE)
    assert kept == {"name": "x", "description": None}


def test_topics_are_lowercased_deduplicated_and_checked() -> None:
    assert validation.topics(["Alpha", "alpha", "b-2"]) == ["alpha", "b-2"]
    for bad in (["-x"], ["has space"], ["x" * 51], [f"t{i}" for i in range(21)]):
        with pytest.raises(GitHubError) as caught:
            validation.topics(bad)
        assert caught.value.status == 422
        assert caught.value.errors and all(isinstance(e, str) for e in caught.value.errors)


# -- bare repositories -------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> str:
    env = {
        **bare.git_env(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_bare_repo_reads_refs_loose_and_packed_and_describes_commits(tmp_path: Path) -> None:
    repo = tmp_path / "o" / "r.git"
    bare.init(repo, "main")
    assert bare.read_branch(repo, "main") is None and bare.branches(repo) == {}
    author = bare.Person("forge-bot", "1001+forge-bot@users.noreply.github.com", "1700000000 +0000")
    first = bare.initial_commit(repo, "main", {"README.md": b"# r\nline\n"}, "Initial", author)
    assert bare.read_branch(repo, "main") == first == bare.resolve(repo, "heads/main")
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(repo), str(work))
    (work / "README.md").write_text("# r\n")
    (work / "new.txt").write_text("a\nb\n")
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "second\n\nbody")
    _git(work, "push", "-q", "origin", "HEAD:main", "HEAD:refs/heads/feature/x")
    second = _git(work, "rev-parse", "HEAD")
    _git(repo, "pack-refs", "--all")  # refs move into packed-refs
    assert bare.read_branch(repo, "main") == second
    assert bare.read_branch(repo, "feature/x") == second
    assert bare.read_branch(repo, "../../etc") is None
    assert bare.resolve(repo, "--upload-pack=x") is None and bare.resolve(repo, "nope") is None
    info = bare.commit(repo, second)
    assert info.parents == [first] and info.message == "second\n\nbody"
    changes = {c.filename: (c.status, c.additions, c.deletions) for c in info.files}
    assert changes == {"README.md": ("modified", 0, 1), "new.txt": ("added", 2, 0)}
    assert bare.commit(repo, first).files[0].status == "added"
    assert bare.size_kib(repo) >= 0


# -- GraphQL -----------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path) -> Env:
    ctx = Context(
        state_dir=tmp_path,
        identity=Identity.new(),
        urls=Urls("127.0.0.1", {"github": 8443}),
        tls=None,  # type: ignore[arg-type]
        clock=Clock(),
        faults=FaultBook(),
        postgres=None,  # type: ignore[arg-type]
    )
    accounts = Accounts(ctx)
    return Env(Repos(ctx), accounts, Shapes(accounts, "127.0.0.1"))


CREATE = """mutation RepositoryCreate($input: CreateRepositoryInput!) {
  createRepository(input: $input) { repository { id name owner { login } url } } }"""
VIEW = """query RepositoryInfo($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {url,isPrivate,visibility,defaultBranchRef{name}} }"""


def test_graphql_create_then_view_as_gh_sends_them(env: Env) -> None:
    org = env.accounts.org
    variables = {
        "input": {
            "name": "app",
            "visibility": "PRIVATE",
            "ownerId": org.node_id,
            "hasIssuesEnabled": True,
            "hasWikiEnabled": True,
        }
    }
    created = gql.run(env, CREATE, variables, None)
    repository = created["data"]["createRepository"]["repository"]
    assert repository["name"] == "app" and repository["owner"] == {"login": org.login}
    assert repository["url"] == "https://127.0.0.1:8443/forge-apps/app"
    viewed = gql.run(env, VIEW, {"owner": "FORGE-APPS", "name": "APP"}, "RepositoryInfo")
    assert viewed == {
        "data": {
            "repository": {
                "url": repository["url"],
                "isPrivate": True,
                "visibility": "PRIVATE",
                "defaultBranchRef": None,
            }
        }
    }
    again = gql.run(env, CREATE, variables, None)
    assert again["data"] == {"createRepository": None}
    assert again["errors"][0]["type"] == "UNPROCESSABLE"
    assert again["errors"][0]["message"] == "Name already exists on this account"
    assert again["errors"][0]["path"] == ["createRepository"]


def test_graphql_errors_have_githubs_shapes(env: Env) -> None:
    missing = gql.run(env, VIEW, {"owner": "forge-apps", "name": "nope"}, None)
    assert missing["data"] == {"repository": None}
    (error,) = missing["errors"]
    assert error["type"] == "NOT_FOUND" and error["path"] == ["repository"]
    assert error["message"] == "Could not resolve to a Repository with the name 'forge-apps/nope'."
    unknown = gql.run(env, '{ repository(owner: "a", name: "b") { nope } }', {}, None)
    assert "data" not in unknown
    assert unknown["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Repository'"
    assert "data" not in gql.run(env, "{ repository(", {}, None)
    assert "data" not in gql.run(env, VIEW, {"owner": "a"}, None)  # $name is non-null
    stranger = {"input": {"name": "x", "visibility": "PUBLIC", "ownerId": "MDQ6VXNlcjk5"}}
    assert gql.run(env, CREATE, stranger, None)["errors"][0]["type"] == "NOT_FOUND"
    assert env.repos.all() == []  # nothing was created by the failed requests


def test_graphql_repository_lists_page_with_cursors(env: Env) -> None:
    org = env.accounts.org
    for name in ("c", "a", "b"):
        env.repos.create(org, name, {"private": name != "b"}, None)
    query = """query($after: String, $privacy: RepositoryPrivacy) {
      repositoryOwner(login: "forge-apps") { ... on Organization { login }
        repositories(first: 2, after: $after, privacy: $privacy,
                     orderBy: {field: NAME, direction: ASC}) {
          totalCount nodes { name } pageInfo { hasNextPage endCursor } } } }"""
    first = gql.run(env, query, {}, None)["data"]["repositoryOwner"]
    assert first["login"] == org.login and first["repositories"]["totalCount"] == 3
    assert [n["name"] for n in first["repositories"]["nodes"]] == ["a", "b"]
    cursor = first["repositories"]["pageInfo"]["endCursor"]
    assert first["repositories"]["pageInfo"]["hasNextPage"] is True
    second = gql.run(env, query, {"after": cursor}, None)["data"]["repositoryOwner"]
    assert [n["name"] for n in second["repositories"]["nodes"]] == ["c"]
    assert second["repositories"]["pageInfo"]["hasNextPage"] is False
    private = gql.run(env, query, {"privacy": "PRIVATE"}, None)["data"]["repositoryOwner"]
    assert [n["name"] for n in private["repositories"]["nodes"]] == ["a", "c"]
    broken = gql.run(env, query, {"after": "not a cursor"}, None)
    assert broken["errors"][0]["type"] == "INVALID_CURSOR_ARGUMENTS"
