"""Hostile input is refused before anything is created, with a message naming the problem.

App names become a GitHub repository, a Supabase project (`forge-<name>`) and a Vercel project,
so they follow the strictest of the three plus shell- and path-safety: 2 to 40 characters of
`a-z 0-9 -`, starting with a letter, ending with a letter or digit, no `--`, not reserved.
A build directory must exist, hold at least one file, keep every symlink inside itself, hold
no special files, no name with a control character, no file it ships over 100 MB (GitHub refuses
such a push, Vercel such an upload; `node_modules/` is never shipped), have UTF-8 migrations
named `<version>_<name>.sql`, and not ask for a Node.js Vercel no longer builds on
(`steps.vercel_node`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from runner.errors import BadInput
from runner.steps.vercel_node import node_version

MAX_NAME = 40
MAX_FILE_BYTES = 100 * 1024 * 1024  # GitHub's hard per-file limit; Vercel's upload limit
NOT_SHIPPED = frozenset({"node_modules", ".git"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_SHELL = set("`$&|;<>(){}[]*?!~#'\"\\ \t\n\r")
_MIGRATION = re.compile(r"^(\d+)_(.*)\.sql$")
RESERVED = frozenset(
    {
        "api", "app", "admin", "www", "root", "null", "undefined", "none", "localhost",
        "github", "supabase", "vercel", "forge", "forge-deploy", "con", "nul", "aux", "prn",
        "test", "new", "settings", "login", "logout", "team", "teams", "projects",
    }
)  # fmt: skip


def app_name(raw: str) -> str:
    """The name, unchanged, or BadInput saying exactly what is wrong with it."""
    if raw is None or raw.strip() == "":
        raise BadInput("app name is empty")
    shown = json.dumps(raw[:60], ensure_ascii=True)
    if len(raw) > MAX_NAME:
        raise BadInput(
            f"app name {shown}... is too long: {len(raw)} characters, at most {MAX_NAME}"
        )
    if "/" in raw or "\\" in raw or raw.startswith(".") or ".." in raw:
        raise BadInput(f"app name {shown} looks like a path; use letters, digits and hyphens")
    bad_shell = sorted({c for c in raw if c in _SHELL})
    if bad_shell:
        raise BadInput(
            f"app name {shown} contains shell metacharacters or spaces: {''.join(bad_shell)!r}"
        )
    if not raw.isascii():
        raise BadInput(f"app name {shown} has non-ASCII characters; use a-z, 0-9 and hyphens")
    if raw != raw.lower():
        raise BadInput(f"app name {shown} has capital letters; use lowercase a-z, 0-9 and hyphens")
    if not _NAME.match(raw) or "--" in raw:
        raise BadInput(
            f"app name {shown} is invalid: 2-{MAX_NAME} characters of a-z 0-9 and single hyphens, "
            "starting with a letter and ending with a letter or digit"
        )
    if raw in RESERVED:
        raise BadInput(f"app name {shown} is reserved; choose another")
    return raw


def default_name(build_dir: Path) -> str:
    """`name` from package.json, else the directory's name; validated like any other name."""
    package = build_dir / "package.json"
    if package.is_file():
        try:
            data = json.loads(package.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(f"{package} is not valid UTF-8 JSON: {e}") from e
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return app_name(data["name"].split("/")[-1])
    return app_name(build_dir.name)


def build_dir(raw: str) -> Path:
    """The resolved build directory, or BadInput naming what makes it unusable."""
    path = Path(raw)
    if not path.exists():
        raise BadInput(f"build directory {raw} does not exist")
    if not path.is_dir():
        raise BadInput(f"build directory {raw} is not a directory")
    root = path.resolve()
    files = 0
    for current, dirs, names in os.walk(root, followlinks=False):
        here = Path(current)
        for name in [*dirs, *names]:
            entry = here / name
            info = entry.lstat()
            mode = info.st_mode
            rel = entry.relative_to(root)
            if _CONTROL.search(name):
                shown = json.dumps(str(rel), ensure_ascii=True)
                raise BadInput(f"build directory: the name {shown} holds a control character")
            if stat.S_ISLNK(mode):
                target = (entry.parent / entry.readlink()).resolve()
                if target != root and root not in target.parents:
                    raise BadInput(
                        f"build directory: symlink {rel} points outside it ({entry.readlink()})"
                    )
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BadInput(f"build directory: {rel} is not a regular file or directory")
            elif stat.S_ISREG(mode):
                files += 1
                shipped = not NOT_SHIPPED.intersection(rel.parts)
                if shipped and info.st_size > MAX_FILE_BYTES:
                    raise BadInput(
                        f"build directory: {rel} is {info.st_size / 2**20:.0f} MB; files over "
                        f"{MAX_FILE_BYTES // 2**20} MB cannot be pushed to GitHub nor uploaded "
                        "to Vercel"
                    )
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    if files == 0:
        raise BadInput(f"build directory {raw} is empty")
    _migrations(root)
    package = root / "package.json"
    node_version(package.read_bytes() if package.is_file() else None)
    return root


def migration_files(root: Path) -> list[Path]:
    folder = root / "supabase" / "migrations"
    return sorted(folder.glob("*.sql")) if folder.is_dir() else []


def _migrations(root: Path) -> None:
    for path in migration_files(root):
        rel = path.relative_to(root)
        if not _MIGRATION.match(path.name):
            raise BadInput(f"{rel}: a migration file name must be <version digits>_<name>.sql")
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInput(
                f"{rel} is not UTF-8 (byte {e.start}): migrations must be UTF-8 text"
            ) from e
