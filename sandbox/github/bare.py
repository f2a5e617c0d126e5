"""The bare git repositories behind the emulated GitHub repos, driven with the real `git`.

Blocking functions: call them through `run_in_threadpool`. Every command runs with a clean
environment (no user or system git config) so the sandbox behaves the same on every machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SHA = re.compile(r"^[0-9a-f]{40}$")


class GitError(RuntimeError):
    """A git command failed in a way the caller did not expect."""


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
    }


def _git(
    repo: Path, *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        input=stdin,
        capture_output=True,
        env=git_env(repo.parent),
        check=False,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise GitError(f"git {args[0]} failed in {repo}: {result.stderr.decode(errors='replace')}")
    return result


def safe_ref_name(name: str) -> bool:
    """A branch or ref name git would accept, and one that cannot escape the repository."""
    if not name or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return False
    if ".." in name or "//" in name or "@{" in name:
        return False
    return not any(c in name for c in " ~^:?*[\\\x7f") and all(ord(c) >= 32 for c in name)


def init(repo: Path, branch: str) -> None:
    repo.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["git", "init", "--bare", "--quiet", f"--initial-branch={branch}", str(repo)],
        capture_output=True,
        env=git_env(repo.parent),
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise GitError(f"git init failed for {repo}: {result.stderr.decode(errors='replace')}")
    _git(repo, "config", "http.receivepack", "true")
    _git(repo, "config", "uploadpack.allowFilter", "true")


def remove(repo: Path) -> None:
    shutil.rmtree(repo, ignore_errors=True)


def move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)


def read_branch(repo: Path, branch: str) -> str | None:
    """The sha a branch points at, read from the ref files (no subprocess), or None."""
    if not safe_ref_name(branch):
        return None
    loose = repo / "refs" / "heads" / branch
    try:
        value = loose.read_text().strip()
        if _SHA.match(value):
            return value
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    try:
        packed = (repo / "packed-refs").read_text()
    except FileNotFoundError:
        return None
    wanted = f"refs/heads/{branch}"
    for line in packed.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1] == wanted and _SHA.match(parts[0]):
            return parts[0]
    return None


def branches(repo: Path) -> dict[str, str]:
    out = _git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads")
    result = {}
    for line in out.stdout.decode().splitlines():
        name, _, sha = line.rpartition(" ")
        result[name] = sha
    return result


def set_head(repo: Path, branch: str) -> None:
    _git(repo, "symbolic-ref", "HEAD", f"refs/heads/{branch}")


def size_kib(repo: Path) -> int:
    out = _git(repo, "count-objects", "-v").stdout.decode()
    values = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return int(values.get("size", "0")) + int(values.get("size-pack", "0"))


def resolve(repo: Path, ref: str) -> str | None:
    """A commit sha for a sha, branch, tag, `heads/X` or `tags/X`; None if there is none."""
    if not ref or ref.startswith("-") or "\0" in ref:
        return None
    out = _git(
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{ref}^{{commit}}",
        check=False,
    )
    sha = out.stdout.decode().strip()
    return sha if out.returncode == 0 and _SHA.match(sha) else None


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    date: str


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str
    sha: str | None
    additions: int
    deletions: int


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author: Person
    committer: Person
    message: str
    files: list[FileChange]


_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "T": "changed",
    "R": "renamed",
    "C": "copied",
}


def _changes(repo: Path, sha: str, parents: list[str]) -> list[FileChange]:
    base = [parents[0], sha] if parents else ["--root", sha]
    raw = _git(repo, "diff-tree", "-r", "--no-commit-id", "--raw", "-z", *base).stdout
    stats = _git(repo, "diff-tree", "-r", "--no-commit-id", "--numstat", "-z", *base).stdout
    counts: dict[str, tuple[int, int]] = {}
    for item in stats.decode(errors="replace").split("\0"):
        added, _, rest = item.partition("\t")
        deleted, _, path = rest.partition("\t")
        if path:
            counts[path] = (
                int(added) if added.isdigit() else 0,
                int(deleted) if deleted.isdigit() else 0,
            )
    fields = raw.decode(errors="replace").split("\0")
    changes = []
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) < 5:
            continue
        status = _STATUS.get(parts[4][:1], "modified")
        blob = None if status == "removed" else parts[3]
        plus, minus = counts.get(path, (0, 0))
        changes.append(FileChange(path, status, blob, plus, minus))
    return changes


def commit(repo: Path, sha: str) -> CommitInfo:
    fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
    out = _git(repo, "show", "-s", f"--format={fmt}", sha).stdout.decode(errors="replace")
    f = out.split("\0", 9)
    parents = f[2].split()
    return CommitInfo(
        sha=f[0],
        tree=f[1],
        parents=parents,
        author=Person(f[3], f[4], f[5]),
        committer=Person(f[6], f[7], f[8]),
        message=f[9].rstrip("\n"),
        files=_changes(repo, f[0], parents),
    )


def initial_commit(
    repo: Path, branch: str, files: dict[str, bytes], message: str, author: Person
) -> str:
    """Write one commit holding `files` (top-level) on `branch`, as `auto_init` does."""
    entries = []
    for name, content in sorted(files.items()):
        blob = _git(repo, "hash-object", "-w", "--stdin", stdin=content).stdout.decode().strip()
        entries.append(f"100644 blob {blob}\t{name}\n")
    tree = _git(repo, "mktree", stdin="".join(entries).encode()).stdout.decode().strip()
    env_vars: dict[str, Any] = {
        "GIT_AUTHOR_NAME": author.name,
        "GIT_AUTHOR_EMAIL": author.email,
        "GIT_AUTHOR_DATE": author.date,
        "GIT_COMMITTER_NAME": "GitHub",
        "GIT_COMMITTER_EMAIL": "noreply@github.com",
        "GIT_COMMITTER_DATE": author.date,
    }
    result = subprocess.run(
        ["git", "--git-dir", str(repo), "commit-tree", tree, "-m", message],
        capture_output=True,
        env={**git_env(repo.parent), **env_vars},
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise GitError(f"git commit-tree failed: {result.stderr.decode(errors='replace')}")
    sha = result.stdout.decode().strip()
    _git(repo, "update-ref", f"refs/heads/{branch}", sha)
    return sha
