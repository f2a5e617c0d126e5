"""The clean copy: the seed's files and secrets stay out, the app's .gitignore applies and is
kept byte for byte, and the build directory is never written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from runner import workcopy


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            st = path.lstat()
            digest.update(f"{path.relative_to(root)}:{st.st_mode}:{st.st_mtime_ns}".encode())
            digest.update(
                path.read_bytes() if not path.is_symlink() else os.readlink(path).encode()
            )
    return digest.hexdigest()


def test_clean_copy_excludes_and_keeps_the_gitignore(tmp_path: Path) -> None:
    build = tmp_path / "build"
    for rel, text in {
        "package.json": "{}",
        "public/index.html": "<h1>hi</h1>",
        ".gitignore": "# mine\n*.log\n/dist/\n",
        "debug.log": "noise",
        "dist/bundle.js": "built",
        ".env": "SECRET=1",
        ".env.local": "SECRET=2",
        "nested/.env": "SECRET=3",
        "node_modules/left-pad/index.js": "x",
        ".forge/system/prompt.md": "seed",
        ".forge/design/a.md": "seed",
        ".forge/patterns/p.md": "seed",
        ".forge/PROJECT-SPEC.md": "seed",
        ".forge/app-notes.md": "kept: not in the seed list",
        ".git/HEAD": "ref: refs/heads/other",
    }.items():
        path = build / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (build / "public" / "home.html").symlink_to("index.html")
    before = tree_digest(build)

    copy = workcopy.make(build, tmp_path / "work", "Deploy test")
    files = {f.path for f in copy.files()}
    assert files == {
        ".gitignore",
        "package.json",
        "public/index.html",
        "public/home.html",
        ".forge/app-notes.md",
    }
    assert (copy.root / ".gitignore").read_bytes() == (build / ".gitignore").read_bytes()
    assert copy.read("public/home.html") == b"index.html"  # a symlink stays a symlink
    by_path = {f.path: f for f in copy.files()}
    assert by_path["public/index.html"].sha1 == hashlib.sha1(b"<h1>hi</h1>").hexdigest()  # noqa: S324
    assert tree_digest(build) == before


def test_same_content_same_tree(tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    (build / "index.html").write_text("same")
    first = workcopy.make(build, tmp_path / "a", "one")
    second = workcopy.make(build, tmp_path / "b", "two")
    assert first.tree == second.tree
