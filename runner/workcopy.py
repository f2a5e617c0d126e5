"""The clean copy of a build: what is pushed to GitHub and uploaded to Vercel, made once.

The mounted build directory is only read. Its files are copied into a private directory (never
following a symlink; the seed's internals, `node_modules/` and `.git/` pruned on the way), a git
repository is made there, the seed's exclude list goes to `.git/info/exclude` (the app's own
`.gitignore` is kept as it is and applies on top), and one commit records the result. The
commit's tree is the deploy's content: `git ls-files` lists it for Vercel, and an unchanged tree
means nothing to push.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The seed's own files, and what never belongs in a repository or an upload.
SEED_EXCLUDES = (
    "/.forge/system/",
    "/.forge/design/",
    "/.forge/patterns/",
    "/.forge/PROJECT-SPEC.md",
    "node_modules/",
    ".env",
    ".env.local",
)
_PRUNED_DIRS = {".git", "node_modules"}
_PRUNED_PATHS = {".forge/system", ".forge/design", ".forge/patterns"}

COMMITTER = {
    "GIT_AUTHOR_NAME": "forge-deploy",
    "GIT_AUTHOR_EMAIL": "deploy@forge-deploy.invalid",
    "GIT_COMMITTER_NAME": "forge-deploy",
    "GIT_COMMITTER_EMAIL": "deploy@forge-deploy.invalid",
}


def git_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A git environment that reads no user or system config and never prompts."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **COMMITTER,
    }
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX separators
    size: int
    sha1: str  # of the content: Vercel's file digest
    mode: int  # 0o100644 / 0o100755 / 0o120000 (symlink)


def _disk_full(path: Path) -> bool:
    """Less than 1 MiB left to this process on `path`'s filesystem: a git that failed there was
    most likely refused its writes (a full TMPDIR mid-run), which the runner reports as such."""
    disk = os.statvfs(path)
    return disk.f_bavail * disk.f_frsize < 1 << 20


class WorkCopy:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root.parent / "git-home"
        self.home.mkdir(exist_ok=True)

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=git_env(self.home, env),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            failed = subprocess.CalledProcessError(
                result.returncode, ["git", args[0]], result.stdout, result.stderr
            )
            if _disk_full(self.root):  # git says so only in words; the disk says so in numbers
                raise OSError(errno.ENOSPC, f"git {args[0]} failed", str(self.root)) from failed
            raise failed
        return result.stdout

    @property
    def commit(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    @property
    def tree(self) -> str:
        return self.git("rev-parse", "HEAD^{tree}").strip()

    def files(self) -> list[FileEntry]:
        entries = []
        out = self.git("ls-files", "-z", "--stage")
        for record in filter(None, out.split("\0")):
            meta, path = record.split("\t", 1)
            mode = int(meta.split()[0], 8)
            full = self.root / path
            data = full.readlink().as_posix().encode() if mode == 0o120000 else full.read_bytes()
            entries.append(FileEntry(path, len(data), hashlib.sha1(data).hexdigest(), mode))  # noqa: S324
        return entries

    def read(self, path: str) -> bytes:
        full = self.root / path
        return full.readlink().as_posix().encode() if full.is_symlink() else full.read_bytes()


def _copy(build_dir: Path, dest: Path) -> None:
    for current, dirs, files in os.walk(build_dir, followlinks=False):
        here = Path(current)
        rel = here.relative_to(build_dir)
        kept = []
        for name in dirs:
            rel_dir = (rel / name).as_posix()
            if name in _PRUNED_DIRS or rel_dir in _PRUNED_PATHS:
                continue
            if (here / name).is_symlink():
                files.append(name)  # copied as a link, not followed
                continue
            kept.append(name)
            (dest / rel / name).mkdir()
        dirs[:] = kept
        for name in files:
            source = here / name
            target = dest / rel / name
            if source.is_symlink():
                target.symlink_to(source.readlink())
            elif source.is_file():
                shutil.copy2(source, target)


def make(build_dir: Path, dest: Path, message: str) -> WorkCopy:
    """Copy `build_dir` into the empty directory `dest` and commit it on `main`."""
    root = dest / "app"
    root.mkdir(parents=True)
    _copy(build_dir, root)
    copy = WorkCopy(root)
    copy.git("init", "-q", "-b", "main")
    (root / ".git" / "info").mkdir(parents=True, exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("\n".join(SEED_EXCLUDES) + "\n")
    copy.git("add", "-A")
    copy.git("commit", "-q", "--allow-empty", "-m", message)
    return copy
