"""The real `gh` (2.23.0) and `git` against the GitHub emulator: the commands a deploy runs.

gh talks to the sandbox as an enterprise host (GH_HOST, GH_ENTERPRISE_TOKEN) and pushes
through git smart-HTTP; every run is under the strace loopback audit (the `cli` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.clis import CliRunner
from tests.support.sandbox import SandboxProcess

pytestmark = pytest.mark.clis


def _repo_entry(sandbox: SandboxProcess, owner: str, name: str) -> dict[str, Any] | None:
    for repo in sandbox.resources()["github"]["repos"]:
        if (repo["owner"], repo["name"]) == (owner, name):
            found: dict[str, Any] = repo
            return found
    return None


def _bare_repo(sandbox: SandboxProcess, owner: str, name: str) -> Path:
    return Path(sandbox.state_dir) / "github" / "repos" / owner / f"{name}.git"


@pytest.fixture
def source(cli: CliRunner, tmp_path: Path) -> Path:
    """A fresh git repository with one commit on main."""
    path = tmp_path / "app"
    path.mkdir()
    (path / "index.html").write_text("<h1>forge</h1>\n")
    cli.run(["git", "init", "-q", "-b", "main"], cwd=path)
    cli.run(["git", "add", "-A"], cwd=path)
    cli.run(["git", "commit", "-q", "-m", "first"], cwd=path)
    return path


def _head(cli: CliRunner, path: Path) -> str:
    return cli.run(["git", "rev-parse", "HEAD"], cwd=path).stdout.strip()


def _url(sandbox: SandboxProcess, owner: str, name: str, password: str | None = None) -> str:
    host = sandbox.info["github"]["host"]
    credentials = f"x-access-token:{password}@" if password is not None else ""
    return f"https://{credentials}{host}/{owner}/{name}.git"


def test_gh_creates_pushes_views_and_deletes_a_private_repo(
    sandbox: SandboxProcess, cli: CliRunner, unique: str, source: Path
) -> None:
    org = sandbox.info["github"]["org"]
    name = f"app-{unique}"
    full = f"{org}/{name}"
    web = f"https://{sandbox.info['github']['host']}/{full}"

    created = cli.run(
        ["gh", "repo", "create", full, "--private", "--source", str(source), "--push"], cwd=source
    )
    assert created.stdout.splitlines()[0] == web
    entry = _repo_entry(sandbox, org, name)
    assert entry is not None
    assert entry["private"] is True and entry["default_branch"] == "main"
    assert entry["pushed_commit"] == _head(cli, source)

    viewed = cli.run(["gh", "repo", "view", full, "--json", "url,isPrivate"])
    assert json.loads(viewed.stdout) == {"isPrivate": True, "url": web}
    missing = cli.run(
        ["gh", "repo", "view", f"{org}/missing-{unique}", "--json", "url"], check=False
    )
    assert missing.returncode == 1
    assert f"Could not resolve to a Repository with the name '{org}/missing-{unique}'." in (
        missing.stderr
    )

    again = cli.run(["gh", "repo", "create", full, "--private"], check=False)
    assert again.returncode == 1 and "Name already exists on this account" in again.stderr

    deleted = cli.run(["gh", "repo", "delete", full, "--yes"])
    assert deleted.returncode == 0
    assert _repo_entry(sandbox, org, name) is None
    assert not _bare_repo(sandbox, org, name).exists()
    gone = cli.run(["gh", "repo", "view", full, "--json", "url"], check=False)
    assert gone.returncode == 1
    twice = cli.run(["gh", "repo", "delete", full, "--yes"], check=False)
    assert twice.returncode == 1 and "HTTP 404" in twice.stderr


def test_gh_creates_in_the_users_own_account(
    sandbox: SandboxProcess, cli: CliRunner, unique: str
) -> None:
    user = sandbox.info["github"]["user"]
    name = f"mine-{unique}"
    created = cli.run(["gh", "repo", "create", name, "--public"])
    assert created.stdout.strip() == f"https://{sandbox.info['github']['host']}/{user}/{name}"
    entry = _repo_entry(sandbox, user, name)
    assert entry is not None and entry["private"] is False and entry["pushed_commit"] is None
    listed = cli.run(["gh", "repo", "list", user, "--json", "name,isPrivate", "-L", "100"])
    assert {"name": name, "isPrivate": False} in json.loads(listed.stdout)
    cli.run(["gh", "repo", "delete", f"{user}/{name}", "--yes"])


def test_git_push_needs_the_token_and_clone_with_it_works(
    sandbox: SandboxProcess, cli: CliRunner, unique: str, source: Path, tmp_path: Path
) -> None:
    org = sandbox.info["github"]["org"]
    name = f"push-{unique}"
    token = sandbox.info["github"]["token"]
    cli.run(["gh", "api", f"/orgs/{org}/repos", "-f", f"name={name}", "-F", "private=true"])

    wrong = cli.run(
        ["git", "push", _url(sandbox, org, name, "ghp_wrong"), "HEAD:main"], cwd=source, check=False
    )
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    anonymous = cli.run(
        ["git", "push", _url(sandbox, org, name), "HEAD:main"], cwd=source, check=False
    )
    assert anonymous.returncode != 0
    entry = _repo_entry(sandbox, org, name)
    assert entry is not None and entry["pushed_commit"] is None
    statuses = [
        e["status"]
        for e in sandbox.traffic()
        if e["service"] == "github" and e["path"] == f"/{org}/{name}.git/info/refs"
    ]
    assert statuses and set(statuses) == {401}

    cli.run(["git", "push", "-q", _url(sandbox, org, name, token), "HEAD:main"], cwd=source)
    head = _head(cli, source)
    entry = _repo_entry(sandbox, org, name)
    assert entry is not None and entry["pushed_commit"] == head

    clone = tmp_path / "clone"
    cli.run(["git", "clone", "-q", _url(sandbox, org, name, token), str(clone)])
    assert _head(cli, clone) == head
    assert (clone / "index.html").read_text() == "<h1>forge</h1>\n"
    anonymous_clone = cli.run(
        ["git", "clone", "-q", _url(sandbox, org, name), str(tmp_path / "x")], check=False
    )
    assert anonymous_clone.returncode != 0  # private: credentials required
    not_there = cli.run(
        ["git", "ls-remote", _url(sandbox, org, f"missing-{unique}", token)], check=False
    )
    assert not_there.returncode != 0 and "not found" in not_there.stderr

    # A second commit fast-forwards; the archived repo then refuses pushes.
    (clone / "more.txt").write_text("more\n")
    cli.run(["git", "add", "-A"], cwd=clone)
    cli.run(["git", "commit", "-q", "-m", "second"], cwd=clone)
    cli.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=clone)
    entry = _repo_entry(sandbox, org, name)
    assert entry is not None and entry["pushed_commit"] == _head(cli, clone)
    cli.run(["gh", "api", "-X", "PATCH", f"/repos/{org}/{name}", "-F", "archived=true"])
    (clone / "late.txt").write_text("late\n")
    cli.run(["git", "add", "-A"], cwd=clone)
    cli.run(["git", "commit", "-q", "-m", "late"], cwd=clone)
    refused = cli.run(["git", "push", "origin", "HEAD:main"], cwd=clone, check=False)
    assert refused.returncode != 0
    cli.run(["gh", "repo", "delete", f"{org}/{name}", "--yes"])


def test_repos_and_pushed_commits_survive_a_restart(
    sandbox: SandboxProcess, cli: CliRunner, unique: str, source: Path
) -> None:
    org = sandbox.info["github"]["org"]
    name = f"durable-{unique}"
    cli.run(
        ["gh", "repo", "create", f"{org}/{name}", "--private", "--source", str(source), "--push"],
        cwd=source,
    )
    head = _head(cli, source)
    sandbox.restart()
    entry = _repo_entry(sandbox, org, name)
    assert entry is not None and entry["pushed_commit"] == head and entry["private"] is True
    viewed = cli.run(["gh", "repo", "view", f"{org}/{name}", "--json", "isPrivate"])
    assert json.loads(viewed.stdout) == {"isPrivate": True}
    listed = subprocess.run(  # the CLI's own inventory command reads the same state
        [sys.executable, "-m", "sandbox.cli", "resources", "--state-dir", str(sandbox.state_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    repos = json.loads(listed.stdout)["github"]["repos"]
    assert any(r["name"] == name and r["pushed_commit"] == head for r in repos)
    cli.run(["gh", "repo", "delete", f"{org}/{name}", "--yes"])
