"""Hostile input is refused with a message naming the problem (no I/O beyond tmp_path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner import validation
from runner.errors import BadInput

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a" * 41, "too long"),
        ("日本語アプリ", "non-ASCII"),
        ("../x", "looks like a path"),
        ("a/b", "looks like a path"),
        (".hidden", "looks like a path"),
        ("app;rm -rf", "shell metacharacters"),
        ("$(id)", "shell metacharacters"),
        ("a`b`", "shell metacharacters"),
        ("my app", "shell metacharacters"),
        ("MyApp", "capital letters"),
        ("-app", "invalid"),
        ("app-", "invalid"),
        ("a--b", "invalid"),
        ("9lives", "invalid"),
        ("x", "invalid"),
        ("admin", "reserved"),
        ("vercel", "reserved"),
    ],
)
def test_hostile_app_names_are_refused_naming_the_problem(name: str, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        validation.app_name(name)


@pytest.mark.parametrize("name", ["hello-app", "a1", "shop-2026", "z" * 40])
def test_good_names_pass_unchanged(name: str) -> None:
    assert validation.app_name(name) == name


def test_default_name_comes_from_package_json() -> None:
    assert validation.default_name(EXAMPLE) == "hello-app"


def test_the_example_app_is_a_valid_build_dir() -> None:
    assert validation.build_dir(str(EXAMPLE)) == EXAMPLE.resolve()


def test_missing_file_empty_and_escaping_build_dirs(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        validation.build_dir(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="not a directory"):
        validation.build_dir(str(tmp_path / "file"))
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(BadInput, match="is empty"):
        validation.build_dir(str(empty))
    escaping = tmp_path / "escaping"
    escaping.mkdir()
    (escaping / "index.html").write_text("hi")
    (escaping / "leak").symlink_to("/etc/passwd")
    with pytest.raises(BadInput, match="symlink leak points outside"):
        validation.build_dir(str(escaping))
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "index.html").write_text("hi")
    (inside / "alias.html").symlink_to("index.html")
    assert validation.build_dir(str(inside)) == inside.resolve()


def test_special_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hi")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(BadInput, match="pipe is not a regular file"):
        validation.build_dir(str(tmp_path))


def test_migrations_must_be_utf8_and_versioned(tmp_path: Path) -> None:
    migrations = tmp_path / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    (migrations / "20250101000000_ok.sql").write_text("select 1;")
    (migrations / "20250102000000_latin1.sql").write_bytes("select 'caf\xe9';".encode("latin-1"))
    with pytest.raises(BadInput, match=r"20250102000000_latin1.sql is not UTF-8"):
        validation.build_dir(str(tmp_path))
    (migrations / "20250102000000_latin1.sql").unlink()
    (migrations / "no_version.sql").write_text("select 1;")
    with pytest.raises(BadInput, match=r"no_version.sql: a migration file name"):
        validation.build_dir(str(tmp_path))


def test_files_over_100_mb_are_refused_unless_never_shipped(tmp_path: Path) -> None:
    build = tmp_path / "app"
    (build / "node_modules" / "big").mkdir(parents=True)
    (build / "index.html").write_text("x")
    with (build / "node_modules" / "big" / "swc.node").open("wb") as fh:
        fh.truncate(130 * 1024 * 1024)  # sparse; node_modules is never pushed nor uploaded
    assert validation.build_dir(str(build)) == build.resolve()
    with (build / "video.mp4").open("wb") as fh:
        fh.truncate(100 * 1024 * 1024 + 1)
    with pytest.raises(BadInput, match=r"video\.mp4 is 100 MB; files over 100 MB cannot be"):
        validation.build_dir(str(build))


@pytest.mark.parametrize("name", ["tab\there", "new\nline", "esc\x1b[31m", "del\x7f"])
def test_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    build = tmp_path / "app"
    (build / "sub").mkdir(parents=True)
    (build / "sub" / name).write_text("x")
    with pytest.raises(BadInput, match="holds a control character"):
        validation.build_dir(str(build))
