"""GitHub step: ensure the app's private repository in the org, and push the clean copy to it.

Ours means: the description `forge-deploy app <app>`, set in the create call itself (so even a
create whose answer was lost leaves a repository we recognise), plus the topic `forge-deploy`,
added right after (and repaired on every later run). A repository under our name without that
description is someone else's: `NotOurs`, never adopted, pushed to or deleted.

Decisions:
- A repository of ours that is now **public** is refused (`FatalError`), not made private again:
  we only ever create private ones, so a person changed it, and silently reverting their choice
  is as wrong as pushing new code into a public repository they may have opened for another
  reason. The message says what to do.
- A repository of ours that is **archived** (by `teardown --archive`) is unarchived by the next
  deploy: the deploy asks for it to be live again, and pushing needs it writable.

The push never forces and never writes to the build directory: the remote `main` (if any) is
fetched into the work copy; an identical tree means nothing to push; otherwise one commit of the
copy's tree, whose parent is the remote head, is pushed fast-forward. git authenticates with an
`http.extraHeader` handed over in `GIT_CONFIG_*` environment variables, so the token is in no
argv and no file. Failures are judged by git's exit status only and retried with backoff (a new
repository can stay invisible to git for seconds); git's stderr is quoted masked.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from runner.context import RunContext
from runner.ensure import ensure
from runner.errors import FatalError, NotOurs, RunnerError
from runner.http import new_session, retrying
from runner.providers.github import PROVIDER, GithubClient, Repo
from runner.settings import Settings
from runner.workcopy import WorkCopy

log = logging.getLogger("forge.runner.github")

# The step names runner.pipeline and runner.teardown run these functions under.
STEP_REPO = "github.repo"
STEP_PUSH = "github.push"
STEP_TEARDOWN = "teardown.github"
MARKER_TOPIC = "forge-deploy"
BRANCH = "main"
GIT_ATTEMPTS = 7  # waits 1+2+4+8+16+32 s (times the backoff scale) before giving up
_REMOTE_REF = "refs/forge/remote-main"


def marker_description(app: str) -> str:
    return f"forge-deploy app {app}"


@dataclass(frozen=True)
class RepoResult:
    repo: Repo
    created: bool


@dataclass(frozen=True)
class PushResult:
    commit: str  # what the remote `main` points at afterwards
    pushed: bool  # False: the remote already had exactly this tree


class GitFailed(RunnerError):
    """A git network command exited nonzero; `stderr` is already masked."""

    def __init__(self, operation: str, returncode: int, stderr: str) -> None:
        self.operation = operation
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {operation} exited {returncode}: {stderr}")


def client(ctx: RunContext) -> GithubClient:
    return GithubClient(ctx.github, ctx.settings.github.org)


def _full_name(ctx: RunContext, name: str) -> str:
    return f"{ctx.settings.github.org}/{name}"


def _not_ours(repo: Repo, app: str) -> NotOurs | None:
    if repo.description == marker_description(app):
        return None
    return NotOurs(
        PROVIDER,
        None,
        f"repository {repo.full_name} exists and was not created by forge-deploy (its "
        f"description is not {marker_description(app)!r}); it was left untouched — deploy "
        "under another name, or rename or remove that repository",
    )


def _public(repo: Repo) -> FatalError:
    return FatalError(
        PROVIDER,
        None,
        f"repository {repo.full_name} was created by forge-deploy as private but is now public; "
        "forge-deploy will not push into a public repository nor change a visibility someone "
        "chose — make it private again, or deploy under another name",
    )


# -- the repository --------------------------------------------------------------------------
def ensure_repo(ctx: RunContext, app: str) -> RepoResult:
    """The app's private repository in the org, created or adopted; refuses someone else's."""
    gh = client(ctx)

    def find() -> Repo | None:
        repo = gh.get_repo(app)
        if repo is not None:
            refused = _not_ours(repo, app)
            if refused is not None:
                raise refused
        return repo

    def create() -> Repo:
        return gh.create_repo(app, marker_description(app))

    repo, created = ensure(
        f"GitHub repository {_full_name(ctx, app)}", find, create, ctx.policy, ctx.wait, ctx.settle
    )
    if not repo.private:
        raise _public(repo)
    if repo.archived:
        ctx.progress(STEP_REPO, f"unarchiving {repo.full_name}")
        repo = gh.set_archived(app, False)
    if MARKER_TOPIC not in repo.topics:
        topics = gh.set_topics(app, [*repo.topics, MARKER_TOPIC])
        repo = dataclasses.replace(repo, topics=topics)
    ctx.checkpoints.put("github.repo", repo.full_name)
    ctx.checkpoints.put("github.repo_url", repo.html_url)
    ctx.progress(
        STEP_REPO, f"{'created' if created else 'adopted'} {repo.full_name}", created=created
    )
    _may_push(ctx, repo)
    return RepoResult(repo, created)


def _may_push(ctx: RunContext, repo: Repo) -> None:
    """Ask for git's receive-pack advertisement (what `git push` asks first) with our token: a
    403 is a token that may not push (a fine-grained one without Contents: write), named now,
    before Supabase or Vercel make anything. Any other answer is left to the push itself."""
    settings = ctx.settings
    with new_session("", settings.run.ca_file) as http:
        http.headers["Authorization"] = f"Basic {_basic_credential(settings)}"
        try:
            response = http.get(
                f"{git_url(settings, repo.name)}/info/refs",
                params={"service": "git-receive-pack"},
                timeout=(10.0, settings.run.http_timeout_s),
                allow_redirects=False,
            )
        except requests.RequestException:
            return  # the push meets it, with its own retries
    if response.status_code == 403:
        org = settings.github.org
        raise FatalError(
            PROVIDER,
            403,
            f"the access token may not push to {repo.full_name} (git's receive-pack answered "
            f"403): a fine-grained token needs {org} as its resource owner, with Contents: "
            "write (and Administration: write) on its repositories",
        )


def remote_tree(ctx: RunContext, repo: Repo | str) -> str | None:
    """The tree of the remote `main` (REST, read-only), or None: no repo, or nothing pushed."""
    name = repo.name if isinstance(repo, Repo) else repo
    branch = client(ctx).branch(name, BRANCH)
    return branch.tree if branch else None


def plan_repo(ctx: RunContext, app: str, copy: WorkCopy | None = None) -> dict[str, Any]:
    """What `ensure_repo` (and, given the work copy, `push`) would do; GET requests only."""
    full_name = _full_name(ctx, app)
    plan: dict[str, Any] = {"resource": "github.repo", "name": full_name}
    repo = client(ctx).get_repo(app)
    if repo is None:
        return {**plan, "action": "create", "detail": "private repository, to be created"}
    refused = _not_ours(repo, app) or (None if repo.private else _public(repo))
    if refused is not None:
        return {**plan, "action": "refuse", "detail": refused.message}
    changes = ["archived: will be unarchived"] if repo.archived else []
    if copy is not None and remote_tree(ctx, repo) != copy.tree:
        changes.append(f"content differs: a commit will be pushed to {BRANCH}")
    if changes:
        return {**plan, "action": "update", "detail": "; ".join(changes)}
    return {**plan, "action": "none", "detail": "exists and is ours"}


def teardown_repo(ctx: RunContext, app: str, archive: bool) -> str:
    """ "deleted", "archived" or "absent"; NotOurs for a repository someone else made."""
    gh = client(ctx)
    repo = gh.get_repo(app)
    if repo is None:
        return "absent"
    refused = _not_ours(repo, app)
    if refused is not None:
        raise refused
    if archive:
        if not repo.archived:
            gh.archive(app)
        ctx.progress(STEP_TEARDOWN, f"archived {repo.full_name}")
        return "archived"
    gh.delete(app)
    ctx.progress(STEP_TEARDOWN, f"deleted {repo.full_name}")
    return "deleted"


# -- the push --------------------------------------------------------------------------------
def git_url(settings: Settings, name: str) -> str:
    return f"{settings.github.git_url}/{settings.github.org}/{name}.git"


def git_auth_env(settings: Settings) -> dict[str, str]:
    """git configuration as environment variables: the token travels in a header given by
    `GIT_CONFIG_*`, never in argv, a URL or a file. Redirects are not followed (the header
    would go with them); a stalled transfer aborts after the HTTP timeout."""
    basic = _basic_credential(settings)
    config = [
        ("http.extraHeader", f"Authorization: Basic {basic}"),
        ("http.followRedirects", "false"),
        ("http.lowSpeedLimit", "1"),
        ("http.lowSpeedTime", str(max(1, round(settings.run.http_timeout_s)))),
    ]
    if settings.run.ca_file is not None:
        config.append(("http.sslCAInfo", str(settings.run.ca_file)))
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _basic_credential(settings: Settings) -> str:
    return base64.b64encode(f"x-access-token:{settings.github.token}".encode()).decode()


def _network(
    ctx: RunContext, copy: WorkCopy, env: dict[str, str], operation: str, *args: str
) -> str:
    """A git command that talks to GitHub; a nonzero exit becomes GitFailed (masked stderr)."""
    try:
        return copy.git(operation, *args, env=env)
    except subprocess.CalledProcessError as e:
        tail = ctx.masker.mask(str(e.stderr or "").strip()[-600:])
        raise GitFailed(operation, e.returncode, tail) from None


def _remote_head(ctx: RunContext, copy: WorkCopy, url: str, env: dict[str, str]) -> str | None:
    """Fetch the remote `main` into the copy; its commit, or None for an empty repository."""
    ref = f"refs/heads/{BRANCH}"
    listing = _network(ctx, copy, env, "ls-remote", url, ref)
    if not any(line.split("\t")[-1] == ref for line in listing.splitlines()):
        return None
    _network(
        ctx, copy, env, "fetch", "--quiet", "--no-tags", "--depth=1", url, f"+{ref}:{_REMOTE_REF}"
    )
    return copy.git("rev-parse", "--verify", f"{_REMOTE_REF}^{{commit}}").strip()


def _with_retries(ctx: RunContext, once: Callable[[], PushResult]) -> PushResult:
    policy = dataclasses.replace(ctx.policy, attempts=GIT_ATTEMPTS)
    for attempt in retrying(policy, ctx.wait, lambda e: isinstance(e, GitFailed)):
        with attempt:
            return once()
    raise AssertionError("unreachable")  # pragma: no cover


def push(ctx: RunContext, repo: Repo, copy: WorkCopy) -> PushResult:
    """Make the remote `main` hold the copy's tree: nothing when it already does, else one
    fast-forward commit on top of the remote head (none on a first deploy)."""
    settings = ctx.settings
    ctx.masker.register(_basic_credential(settings))
    env = git_auth_env(settings)
    url = git_url(settings, repo.name)
    message = copy.git("show", "-s", "--format=%B", "HEAD").strip() or "forge-deploy"
    attempted: set[str] = set()

    def once() -> PushResult:
        remote = _remote_head(ctx, copy, url, env)
        if remote is not None:
            if copy.git("rev-parse", f"{remote}^{{tree}}").strip() == copy.tree:
                # an earlier attempt may have pushed this before its answer was lost
                return PushResult(remote, pushed=remote in attempted)
            commit = copy.git("commit-tree", copy.tree, "-p", remote, "-m", message).strip()
        else:
            commit = copy.commit
        attempted.add(commit)
        _network(
            ctx, copy, env, "push", "--quiet", "--no-verify", url, f"{commit}:refs/heads/{BRANCH}"
        )
        return PushResult(commit, pushed=True)

    try:
        result = _with_retries(ctx, once)
    except GitFailed as e:
        raise FatalError(
            PROVIDER, None, f"pushing to {repo.full_name} failed after {GIT_ATTEMPTS} attempts: {e}"
        ) from e
    ctx.checkpoints.put("github.commit", result.commit)
    verb = "pushed" if result.pushed else "already up to date at"
    ctx.progress(
        STEP_PUSH, f"{verb} {result.commit[:12]} to {repo.full_name}", commit=result.commit
    )
    log.info("%s %s %s", repo.full_name, verb, result.commit)
    return result
