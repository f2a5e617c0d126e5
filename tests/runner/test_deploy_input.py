"""Bad input through the real command: exit 2 with the problem named, nothing created;
configuration errors before any request; malformed SQL fails the migration step cleanly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.runner import RunnerProcess
from tests.support.sandbox import SandboxProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"


def provider_calls(sandbox: SandboxProcess) -> int:
    return sum(not t["path"].startswith("/_admin") for t in sandbox.traffic())


def snapshot(sandbox: SandboxProcess) -> tuple[int, int, int]:
    res = sandbox.resources()
    return (
        len(res["github"]["repos"]),
        len(res["supabase"]["projects"]),
        len(res["vercel"]["projects"]),
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "app name is empty"),
        ("x" * 80, "too long"),
        ("日本語", "non-ASCII"),
        ("../x", "looks like a path"),
        ("a;reboot", "shell metacharacters"),
        ("api", "reserved"),
    ],
)
def test_hostile_names_exit_2_and_create_nothing(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, tmp_path: Path, name: str, problem: str
) -> None:
    before = snapshot(sandbox)
    traffic = provider_calls(sandbox)
    result = forge_runner.run(["deploy", "--build-dir", str(EXAMPLE), "--name", name])
    assert result.returncode == 2, result.explain()
    assert result.eof.payload == {"outcome": "bad_input", "exit_code": 2}
    assert problem in result.result["error"]
    assert problem in result.stderr
    assert snapshot(sandbox) == before
    assert provider_calls(sandbox) == traffic  # not one request


def build_dirs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    missing = tmp_path / "missing"
    empty = tmp_path / "empty"
    empty.mkdir()
    escaping = tmp_path / "escaping"
    shutil.copytree(EXAMPLE, escaping)
    (escaping / "public" / "passwd").symlink_to("/etc/passwd")
    latin = tmp_path / "latin"
    shutil.copytree(EXAMPLE, latin)
    (latin / "supabase" / "migrations" / "20250103000000_bad.sql").write_bytes(b"select '\xe9';")
    control = tmp_path / "control"
    shutil.copytree(EXAMPLE, control)
    (control / "public" / "bell\x07\nname.txt").write_text("x")
    huge = tmp_path / "huge"
    shutil.copytree(EXAMPLE, huge)
    with (huge / "public" / "huge.bin").open("wb") as fh:
        fh.truncate(101 * 1024 * 1024)  # sparse: no disk used
    return {
        "control-char-name": (control, 'the name "public/bell\\u0007\\nname.txt" holds a control'),
        "huge-file": (huge, "public/huge.bin is 101 MB; files over 100 MB cannot be pushed"),
        "missing": (missing, "does not exist"),
        "empty": (empty, "is empty"),
        "symlink-escape": (escaping, "points outside it"),
        "non-utf8-migration": (latin, "20250103000000_bad.sql is not UTF-8"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "symlink-escape",
        "non-utf8-migration",
        "control-char-name",  # found by bench/reliability: these deployed live
        "huge-file",  # found by bench/reliability: failed at Vercel after the repo was made
    ],
)
def test_bad_build_dirs_exit_2_and_create_nothing(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, tmp_path: Path, case: str
) -> None:
    build, problem = build_dirs(tmp_path)[case]
    before = snapshot(sandbox)
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", "valid-name"])
    assert result.returncode == 2, result.explain()
    assert problem in result.result["error"]
    assert snapshot(sandbox) == before


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("VERCEL_TOKEN", "", "VERCEL_TOKEN is not set"),
        ("GH_ORG", "not a login!", "GH_ORG is malformed"),
        ("FORGE_SUPABASE_API_URL", "nowhere", "FORGE_SUPABASE_API_URL is malformed"),
    ],
)
def test_configuration_errors_name_the_variable_before_any_request(
    sandbox: SandboxProcess,
    forge_runner: RunnerProcess,
    variable: str,
    value: str,
    problem: str,
) -> None:
    traffic = provider_calls(sandbox)
    result = forge_runner.run(
        ["deploy", "--build-dir", str(EXAMPLE), "--name", "config-check"], {variable: value}
    )
    assert result.returncode == 2, result.explain()
    assert problem in result.result["error"]
    assert provider_calls(sandbox) == traffic


@pytest.mark.clis
@pytest.mark.postgres
def test_malformed_sql_fails_the_migration_step_naming_the_file(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    (build / "supabase" / "migrations" / "20250103000000_broken.sql").write_text(
        "create table half (id int);\ncreate tabel oops (id int);\n"
    )
    name = f"sql-{unique}"
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    assert result.returncode == 1, result.explain()
    failed = [e.payload for e in result.events if e.type.value == "step_failed"]
    assert any(f["step"] == "supabase.migrations" for f in failed), failed
    error = result.result["error"]
    assert "20250103000000_broken.sql" in error and "syntax error" in error
    project = next(
        p for p in sandbox.resources()["supabase"]["projects"] if p["name"] == f"forge-{name}"
    )
    assert [m["version"] for m in project["migrations"]] == ["20250101000000", "20250102000000"]
    # production never moved to a build whose migrations failed
    assert not [
        a for a in sandbox.resources()["vercel"]["aliases"] if a["alias"].endswith(f"/p/{name}")
    ]
