"""The GitHub step against the sandbox: real REST calls, real git over HTTPS, injected faults."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner import workcopy
from runner.context import RunContext
from runner.ensure import AlreadyExists
from runner.errors import FatalError, NotOurs
from runner.events import EventType
from runner.providers.github import GithubClient
from runner.steps import github as step
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

EXPECTED_FILES = {
    ".gitignore",
    ".forge/deploy.json",
    "package.json",
    "src/index.ts",
    "src/lib/util.ts",
    "supabase/migrations/0001_init.sql",
}
APP_GITIGNORE = b"# the app's own rules\n/dist/\n*.log\n"


@pytest.fixture
def ctx_events(runner_env: dict[str, str]) -> Iterator[tuple[RunContext, io.StringIO]]:
    ctx, stream = runner_support.make_context(runner_env)
    yield ctx, stream
    runner_support.CAPTURED.append(stream.getvalue())  # the session's secret scan reads it
    token = runner_env["GH_TOKEN"]
    assert token not in stream.getvalue()


@pytest.fixture
def ctx(ctx_events: tuple[RunContext, io.StringIO]) -> RunContext:
    return ctx_events[0]


@pytest.fixture
def quick_ctx(runner_env: dict[str, str]) -> Iterator[RunContext]:
    """A context whose HTTP (and git stall) timeout is 1 s: for answers that never come."""
    ctx, stream = runner_support.make_context({**runner_env, "FORGE_HTTP_TIMEOUT_S": "1"})
    yield ctx
    runner_support.CAPTURED.append(stream.getvalue())
    assert runner_env["GH_TOKEN"] not in stream.getvalue()


@pytest.fixture
def app(unique: str) -> str:
    return f"app-{unique}"


def _entries(sandbox: SandboxProcess, org: str, name: str) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.resources()["github"]["repos"]
        if r["owner"] == org and r["name"].lower() == name.lower()
    ]


def _one(sandbox: SandboxProcess, org: str, name: str) -> dict[str, Any]:
    found = _entries(sandbox, org, name)
    assert len(found) == 1, found
    return found[0]


def _bare_git(sandbox: SandboxProcess, org: str, name: str, *args: str) -> str:
    path = Path(sandbox.state_dir) / "github" / "repos" / org / f"{name}.git"
    return subprocess.run(
        ["git", f"--git-dir={path}", *args], capture_output=True, check=True
    ).stdout.decode()


def _faults(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = sandbox.admin("GET", "faults").json()
    return rules


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _snapshot(root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(current) / name
            stat = path.lstat()
            rel = path.relative_to(root).as_posix()
            found[rel] = (
                stat.st_mode,
                stat.st_mtime_ns,
                None if path.is_dir() else path.read_bytes(),
            )
    return found


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    _write(
        root,
        {
            ".gitignore": APP_GITIGNORE,
            ".forge/deploy.json": b"{}\n",
            ".forge/system/x": b"seed internals\n",
            ".forge/design/notes.md": b"design\n",
            ".forge/PROJECT-SPEC.md": b"# spec\n",
            "node_modules/left-pad/index.js": b"module.exports = 1\n",
            ".env": b"SECRET=1\n",
            ".env.local": b"SECRET=2\n",
            "dist/bundle.js": b"built\n",
            "debug.log": b"log\n",
            "package.json": b'{"name": "hello"}\n',
            "src/index.ts": b"export const hello = 1\n",
            "src/lib/util.ts": b"export const util = 2\n",
            "supabase/migrations/0001_init.sql": b"create table t (id int);\n",
        },
    )
    return root


# -- the repository ------------------------------------------------------------------------------
def test_ensure_twice_creates_then_adopts_one_private_marked_repo(
    sandbox: SandboxProcess, ctx_events: tuple[RunContext, io.StringIO], app: str
) -> None:
    ctx, stream = ctx_events
    org = ctx.settings.github.org
    assert step.plan_repo(ctx, app)["action"] == "create"

    first = step.ensure_repo(ctx, app)
    second = step.ensure_repo(ctx, app)

    assert (first.created, second.created) == (True, False)
    assert first.repo.full_name == second.repo.full_name == f"{org}/{app}"
    entry = _one(sandbox, org, app)
    assert entry["private"] is True and entry["archived"] is False
    assert entry["description"] == f"forge-deploy app {app}"
    assert entry["topics"] == ["forge-deploy"]
    assert entry["pushed_commit"] is None
    assert step.plan_repo(ctx, app) == {
        "resource": "github.repo",
        "name": f"{org}/{app}",
        "action": "none",
        "detail": "exists and is ours",
    }
    events = runner_support.events_of(stream.getvalue())
    checkpoints = {
        e.payload["key"]: e.payload["value"] for e in events if e.type is EventType.CHECKPOINT
    }
    assert checkpoints == {"github.repo": f"{org}/{app}", "github.repo_url": first.repo.html_url}


def test_someone_elses_repo_is_refused_and_left_untouched(
    sandbox: SandboxProcess, ctx: RunContext, app: str
) -> None:
    org = ctx.settings.github.org
    GithubClient(ctx.github, org).create_repo(app, "hand-made, not by forge-deploy")
    before = _one(sandbox, org, app)

    with pytest.raises(NotOurs) as refused:
        step.ensure_repo(ctx, app)
    assert f"{org}/{app} exists and was not created by forge-deploy" in str(refused.value)
    plan = step.plan_repo(ctx, app)
    assert plan["action"] == "refuse" and "not created by forge-deploy" in plan["detail"]
    for archive in (True, False):
        with pytest.raises(NotOurs):
            step.teardown_repo(ctx, app, archive=archive)

    assert _one(sandbox, org, app) == before
    assert ctx.checkpoints.get("github.repo") is None


def test_a_create_answering_name_taken_is_already_exists(ctx: RunContext, app: str) -> None:
    gh = GithubClient(ctx.github, ctx.settings.github.org)
    gh.create_repo(app, step.marker_description(app))
    with pytest.raises(AlreadyExists):
        gh.create_repo(app, step.marker_description(app))


def test_our_repo_made_public_is_refused(
    sandbox: SandboxProcess, ctx: RunContext, app: str
) -> None:
    org = ctx.settings.github.org
    step.ensure_repo(ctx, app)
    ctx.github.request("PATCH", f"/repos/{org}/{app}", json={"private": False})

    with pytest.raises(FatalError) as refused:
        step.ensure_repo(ctx, app)
    assert not isinstance(refused.value, NotOurs)
    assert "is now public" in str(refused.value)
    assert step.plan_repo(ctx, app)["action"] == "refuse"
    assert _one(sandbox, org, app)["private"] is False  # their choice, left as it is


# -- faults on every GitHub call -----------------------------------------------------------------
def _transient_rules(method: str, path: str) -> list[dict[str, Any]]:
    """503 twice, a 429 with Retry-After, then a dropped connection, all on one call."""
    rule = {"service": "github", "method": method, "path": path}
    return [
        {**rule, "action": "status", "status": 503, "times": 2},
        {**rule, "action": "status", "status": 429, "retry_after": 1, "times": 1},
        {**rule, "action": "reset", "times": 1},
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", r"^/api/v3/repos/[^/]+/[^/]+$"),
        ("POST", r"^/api/v3/orgs/[^/]+/repos$"),
        ("PUT", r"/topics$"),
    ],
    ids=["get-repo", "create-repo", "set-topics"],
)
def test_transient_faults_on_each_ensure_call_leave_exactly_one_repo(
    sandbox: SandboxProcess, ctx: RunContext, app: str, method: str, path: str
) -> None:
    sandbox.set_faults(_transient_rules(method, path))
    result = step.ensure_repo(ctx, app)
    assert result.created
    assert [r["hits"] for r in _faults(sandbox)] == [2, 1, 1]
    entry = _one(sandbox, ctx.settings.github.org, app)
    assert entry["topics"] == ["forge-deploy"] and entry["private"] is True


def test_an_ambiguous_create_leaves_exactly_one_repo(
    sandbox: SandboxProcess, quick_ctx: RunContext, app: str
) -> None:
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": r"^/api/v3/orgs/[^/]+/repos$",
                "action": "timeout_after_success",
                "times": 1,
            }
        ]
    )
    result = step.ensure_repo(quick_ctx, app)
    assert result.created and _faults(sandbox)[0]["hits"] == 1
    entry = _one(sandbox, quick_ctx.settings.github.org, app)
    assert entry["description"] == f"forge-deploy app {app}"
    assert entry["topics"] == ["forge-deploy"]


@pytest.mark.parametrize("status", [403, 422])
def test_a_permanent_4xx_on_create_is_fatal_with_the_providers_message(
    sandbox: SandboxProcess, ctx: RunContext, app: str, status: int
) -> None:
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": r"/repos$",
                "action": "status",
                "status": status,
            }
        ]
    )
    with pytest.raises(FatalError) as failed:
        step.ensure_repo(ctx, app)
    assert failed.value.status == status
    assert failed.value.message == "fault injected by the sandbox"
    assert _faults(sandbox)[0]["hits"] == 1  # not retried
    assert _entries(sandbox, ctx.settings.github.org, app) == []


def test_a_bad_token_is_fatal_with_the_providers_message(
    sandbox: SandboxProcess, runner_env: dict[str, str], app: str
) -> None:
    ctx, stream = runner_support.make_context({**runner_env, "GH_TOKEN": "ghp_" + "x" * 36})
    with pytest.raises(FatalError) as failed:
        step.ensure_repo(ctx, app)
    assert (failed.value.status, failed.value.message) == (401, "Bad credentials")
    assert _entries(sandbox, ctx.settings.github.org, app) == []
    assert "x" * 36 not in stream.getvalue()


# -- the push ------------------------------------------------------------------------------------
@pytest.fixture
def git_argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every git command line the runner starts (what `ps` would show), via a PATH shim that
    records its argv and execs the real git."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-argv.log"
    real = shutil.which("git")
    assert real is not None
    script = shim / "git"
    script.write_text(
        f'#!/bin/sh\nprintf "%s " "$@" >> "{log}"\necho >> "{log}"\nexec {real} "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def test_push_sends_the_clean_copy_once_and_then_fast_forwards(
    sandbox: SandboxProcess,
    ctx_events: tuple[RunContext, io.StringIO],
    app: str,
    build: Path,
    tmp_path: Path,
    git_argv_log: Path,
) -> None:
    ctx, stream = ctx_events
    org = ctx.settings.github.org
    token = ctx.settings.github.token
    before = _snapshot(build)
    repo = step.ensure_repo(ctx, app).repo

    copy1 = workcopy.make(build, tmp_path / "wc1", "deploy 1")
    planned = step.plan_repo(ctx, app, copy1)
    assert planned["action"] == "update" and "content differs" in planned["detail"]
    first = step.push(ctx, repo, copy1)

    assert first.pushed and first.commit == copy1.commit
    assert _one(sandbox, org, app)["pushed_commit"] == first.commit
    listed = set(_bare_git(sandbox, org, app, "ls-tree", "-r", "--name-only", "main").split())
    assert listed == EXPECTED_FILES
    assert _bare_git(sandbox, org, app, "show", "main:.gitignore").encode() == APP_GITIGNORE
    assert step.remote_tree(ctx, repo) == copy1.tree == step.remote_tree(ctx, app)
    assert _snapshot(build) == before and not (build / ".git").exists()

    # the same content again: nothing to plan, nothing to push, no new commit
    copy2 = workcopy.make(build, tmp_path / "wc2", "deploy 2")
    assert step.plan_repo(ctx, app, copy2)["action"] == "none"
    second = step.push(ctx, repo, copy2)
    assert (second.pushed, second.commit) == (False, first.commit)
    assert _bare_git(sandbox, org, app, "rev-list", "--count", "main").strip() == "1"

    # changed content: one commit on top of the previous one
    _write(build, {"src/index.ts": b"export const hello = 2\n", "src/new.ts": b"new\n"})
    copy3 = workcopy.make(build, tmp_path / "wc3", "deploy 3")
    assert step.plan_repo(ctx, app, copy3)["action"] == "update"
    third = step.push(ctx, repo, copy3)
    assert third.pushed and third.commit != copy3.commit  # re-parented onto the remote head
    assert _bare_git(sandbox, org, app, "rev-parse", "main").strip() == third.commit
    assert _bare_git(sandbox, org, app, "rev-parse", "main^").strip() == first.commit
    assert _bare_git(sandbox, org, app, "rev-list", "--count", "main").strip() == "2"
    assert _bare_git(sandbox, org, app, "rev-parse", "main^{tree}").strip() == copy3.tree
    assert _bare_git(sandbox, org, app, "show", "main:src/index.ts") == "export const hello = 2\n"
    assert ctx.checkpoints.get("github.commit") == third.commit

    # the token in no command line, no file, no event
    argv = git_argv_log.read_text()
    assert "push " in argv and "ls-remote " in argv
    basic = step._basic_credential(ctx.settings)
    assert token not in argv and basic not in argv
    for current, _, files in os.walk(tmp_path):
        for name in files:
            data = (Path(current) / name).read_bytes()
            assert token.encode() not in data and basic.encode() not in data, name
    assert token not in stream.getvalue()


def test_push_retries_while_a_new_repo_is_invisible_to_git(
    sandbox: SandboxProcess, ctx: RunContext, app: str, build: Path, tmp_path: Path
) -> None:
    repo = step.ensure_repo(ctx, app).repo
    sandbox.set_faults(
        [
            {
                "service": "github",
                "path": r"\.git/info/refs$",
                "action": "status",
                "status": 404,
                "times": 2,
            },
            {
                "service": "github",
                "method": "POST",
                "path": r"\.git/git-receive-pack$",
                "action": "reset",
                "times": 1,
            },
        ]
    )
    copy = workcopy.make(build, tmp_path / "wc", "deploy")
    result = step.push(ctx, repo, copy)
    assert result.pushed and result.commit == copy.commit
    assert [r["hits"] for r in _faults(sandbox)] == [2, 1]
    assert _one(sandbox, ctx.settings.github.org, app)["pushed_commit"] == copy.commit


def test_a_push_whose_answer_is_lost_is_not_pushed_twice(
    sandbox: SandboxProcess, quick_ctx: RunContext, app: str, build: Path, tmp_path: Path
) -> None:
    """The receive-pack lands but git never hears back: the stall aborts (http.lowSpeedTime),
    the next attempt finds its own commit on the remote and reports it pushed."""
    repo = step.ensure_repo(quick_ctx, app).repo
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "POST",
                "path": r"\.git/git-receive-pack$",
                "action": "timeout_after_success",
                "times": 1,
            },
            {  # counts any further receive-pack (a zero delay changes nothing else)
                "service": "github",
                "method": "POST",
                "path": r"\.git/git-receive-pack$",
                "action": "delay",
                "delay_s": 0,
            },
        ]
    )
    copy = workcopy.make(build, tmp_path / "wc", "deploy")
    result = step.push(quick_ctx, repo, copy)
    assert (result.pushed, result.commit) == (True, copy.commit)
    assert [r["hits"] for r in _faults(sandbox)] == [1, 0]  # found its commit, no second push
    assert (
        _bare_git(
            sandbox, quick_ctx.settings.github.org, app, "rev-list", "--count", "main"
        ).strip()
        == "1"
    )


def test_a_git_push_that_keeps_failing_is_fatal_and_masked(
    sandbox: SandboxProcess, ctx: RunContext, app: str, build: Path, tmp_path: Path
) -> None:
    repo = step.ensure_repo(ctx, app).repo
    sandbox.set_faults(
        [{"service": "github", "path": r"\.git/", "action": "status", "status": 403}]
    )
    copy = workcopy.make(build, tmp_path / "wc", "deploy")
    with pytest.raises(FatalError) as failed:
        step.push(ctx, repo, copy)
    message = str(failed.value)
    assert f"pushing to {repo.full_name} failed after {step.GIT_ATTEMPTS} attempts" in message
    assert ctx.settings.github.token not in message
    assert _faults(sandbox)[0]["hits"] == step.GIT_ATTEMPTS
    assert _one(sandbox, ctx.settings.github.org, app)["pushed_commit"] is None


def test_git_auth_env_carries_the_token_only_in_a_header() -> None:
    from runner import settings as runner_settings

    settings = runner_settings.load(
        {
            "GH_TOKEN": "ghp_secret-token-1234",
            "GH_ORG": "acme",
            "SUPABASE_ACCESS_TOKEN": "sbp_abcdefgh",
            "SUPABASE_ORG_ID": "org",
            "VERCEL_TOKEN": "vercel-abcdefgh",
            "VERCEL_ORG_ID": "team_1",
        }
    )
    env = step.git_auth_env(settings)
    assert env["GIT_CONFIG_COUNT"] == "4" and "http.sslCAInfo" not in env.values()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"] == (
        "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3NlY3JldC10b2tlbi0xMjM0"
    )
    assert step.git_url(settings, "hello") == "https://github.com/acme/hello.git"
    assert "ghp_secret-token-1234" not in repr(env)


# -- teardown ------------------------------------------------------------------------------------
def test_teardown_archives_deletes_and_reports_absence(
    sandbox: SandboxProcess, ctx: RunContext, app: str
) -> None:
    org = ctx.settings.github.org
    assert step.teardown_repo(ctx, app, archive=False) == "absent"
    step.ensure_repo(ctx, app)

    assert step.teardown_repo(ctx, app, archive=True) == "archived"
    assert _one(sandbox, org, app)["archived"] is True
    assert step.teardown_repo(ctx, app, archive=True) == "archived"
    assert step.plan_repo(ctx, app)["action"] == "update"
    again = step.ensure_repo(ctx, app)  # a new deploy wants it live again
    assert not again.created and not again.repo.archived
    assert _one(sandbox, org, app)["archived"] is False

    assert step.teardown_repo(ctx, app, archive=False) == "deleted"
    assert _entries(sandbox, org, app) == []
    assert step.teardown_repo(ctx, app, archive=False) == "absent"


@pytest.mark.parametrize(
    ("method", "path", "archive"),
    [
        ("PATCH", r"^/api/v3/repos/[^/]+/[^/]+$", True),
        ("DELETE", r"^/api/v3/repos/[^/]+/[^/]+$", False),
    ],
    ids=["archive", "delete"],
)
def test_transient_faults_on_teardown_calls(
    sandbox: SandboxProcess, ctx: RunContext, app: str, method: str, path: str, archive: bool
) -> None:
    step.ensure_repo(ctx, app)
    sandbox.set_faults(_transient_rules(method, path))
    assert step.teardown_repo(ctx, app, archive=archive) == ("archived" if archive else "deleted")
    assert [r["hits"] for r in _faults(sandbox)] == [2, 1, 1]
    found = _entries(sandbox, ctx.settings.github.org, app)
    assert [e["archived"] for e in found] == ([True] if archive else [])


def test_a_delete_whose_answer_is_lost_still_ends_deleted(
    sandbox: SandboxProcess, quick_ctx: RunContext, app: str
) -> None:
    step.ensure_repo(quick_ctx, app)
    sandbox.set_faults(
        [
            {
                "service": "github",
                "method": "DELETE",
                "path": r"/repos/",
                "action": "timeout_after_success",
                "times": 1,
            }
        ]
    )
    assert step.teardown_repo(quick_ctx, app, archive=False) == "deleted"
    assert _entries(sandbox, quick_ctx.settings.github.org, app) == []


def test_transient_faults_on_the_branch_read(
    sandbox: SandboxProcess, ctx: RunContext, app: str, build: Path, tmp_path: Path
) -> None:
    repo = step.ensure_repo(ctx, app).repo
    assert step.remote_tree(ctx, repo) is None  # nothing pushed yet
    copy = workcopy.make(build, tmp_path / "wc", "deploy")
    step.push(ctx, repo, copy)
    sandbox.set_faults(_transient_rules("GET", r"/branches/main$"))
    assert step.remote_tree(ctx, repo) == copy.tree
    assert [r["hits"] for r in _faults(sandbox)] == [2, 1, 1]
    assert step.remote_tree(ctx, f"missing-{app}") is None
