"""`forge-runner deploy` end to end against the sandbox: live, idempotent, incremental, planned.

Each test runs the real runner process (under the loopback audit) with only what
`forge-sandbox env` prints plus the test knobs, and checks what exists afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.checkpoints import SEALED_DB_PASSWORD, resume_text
from runner.events import EventType
from runner.sealing import new_keypair
from tests.support.runner import RunnerProcess, RunnerResult
from tests.support.sandbox import SandboxProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def app_copy(tmp_path: Path, name: str = "app") -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLE, target, symlinks=True)
    return target


def deploy(runner: RunnerProcess, build: Path, name: str, *extra: str) -> RunnerResult:
    return runner.run(["deploy", "--build-dir", str(build), "--name", name, *extra])


def assert_live(result: RunnerResult) -> dict[str, Any]:
    assert result.returncode == 0, result.explain()
    assert result.eof.payload == {"outcome": "live", "exit_code": 0}
    return result.result


def mine(sandbox: SandboxProcess, name: str) -> dict[str, Any]:
    """Everything in the sandbox that belongs to app `name`, deployments aside."""
    res = sandbox.resources()
    return {
        "repos": [r for r in res["github"]["repos"] if r["name"] == name],
        "projects": [
            {k: p[k] for k in ("ref", "name", "status", "migrations")}
            for p in res["supabase"]["projects"]
            if p["name"] == f"forge-{name}"
        ],
        "vercel": [p for p in res["vercel"]["projects"] if p["name"] == name],
        "env": sorted(
            (e["key"], e["type"], tuple(e["target"]))
            for e in res["vercel"]["env"]
            if e["project"] == name
        ),
    }


def deployments(sandbox: SandboxProcess, name: str) -> list[dict[str, Any]]:
    return [d for d in sandbox.resources()["vercel"]["deployments"] if d["project"] == name]


def step_info(result: RunnerResult, step: str) -> dict[str, Any]:
    found = [e.payload for e in result.of(EventType.STEP_FINISHED) if e.payload["step"] == step]
    assert found, f"no finished event for {step}\n{result.explain()}"
    return found[-1]


def test_deploy_of_the_example_app_ends_live(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"hello-{unique}"
    build = app_copy(tmp_path)
    before = digest(build)
    result = deploy(forge_runner, build, name)
    payload = assert_live(result)
    assert digest(build) == before  # the build directory is only read

    # Every stdout line is an event of the schema, seq rising by one, eof last.
    assert [e.seq for e in result.events] == list(range(1, len(result.events) + 1))
    started = {e.payload["step"] for e in result.of(EventType.STEP_STARTED)}
    assert started >= {
        "github.repo",
        "supabase.project",
        "vercel.build",
        "vercel.promote",
        "health",
    }

    ca = forge_runner.env["FORGE_CA_FILE"]
    page = requests.get(payload["urls"]["app"], verify=ca, timeout=10)
    assert page.status_code == 200 and "Hello from forge-deploy" in page.text
    assert payload["health"]["ok"] is True

    found = mine(sandbox, name)
    assert len(found["repos"]) == 1
    repo = found["repos"][0]
    assert repo["private"] is True and repo["pushed_commit"] == payload["commit"]
    assert len(found["projects"]) == 1
    assert [m["version"] for m in found["projects"][0]["migrations"]] == [
        "20250101000000",
        "20250102000000",
    ]
    keys = {k for k, _, _ in found["env"]}
    assert {
        "NEXT_PUBLIC_SUPABASE_URL",
        "NEXT_PUBLIC_SUPABASE_ANON_KEY",
        "SUPABASE_SERVICE_ROLE_KEY",
    } <= keys
    assert len(found["vercel"]) == 1


def test_redeploy_changes_nothing_then_exactly_what_changed(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"again-{unique}"
    build = app_copy(tmp_path)
    public, private = new_keypair()
    initial = forge_runner.run(
        ["deploy", "--build-dir", str(build), "--name", name], {"FORGE_SEAL_PUBLIC_KEY": public}
    )
    assert_live(initial)
    sealed = initial.checkpoints()["supabase.db_password_sealed"]
    first = mine(sandbox, name)
    first_deployments = deployments(sandbox, name)

    second = deploy(forge_runner, build, name)
    assert_live(second)
    assert mine(sandbox, name) == first  # nothing created, nothing migrated
    assert len(deployments(sandbox, name)) == len(first_deployments) + 1
    assert step_info(second, "github.push")["pushed"] is False
    assert step_info(second, "vercel.build")["uploaded"] == 0
    assert step_info(second, "supabase.migrations")["applied"] == []
    for step in ("github.repo", "supabase.project", "vercel.project"):
        assert step_info(second, step)["created"] is False

    (build / "supabase" / "migrations" / "20250103000000_add_title.sql").write_text(
        "alter table public.notes add column title text;\n"
    )
    (build / "public" / "new.html").write_text("<p>new page</p>\n")
    # A new migration needs the database password: the caller hands back what it kept sealed,
    # as a checkpoint in the --resume file.
    resume = tmp_path / "sealed.jsonl"
    resume.write_text(resume_text("redeploy-3", {SEALED_DB_PASSWORD: sealed}))
    third = forge_runner.run(
        ["deploy", "--build-dir", str(build), "--name", name, "--resume", str(resume)],
        {"FORGE_SEAL_PRIVATE_KEY": private},
    )
    assert_live(third)
    assert step_info(third, "supabase.migrations")["applied"] == ["20250103000000_add_title.sql"]
    assert step_info(third, "vercel.build")["uploaded"] == 1
    assert step_info(third, "github.push")["pushed"] is True
    now = mine(sandbox, name)
    assert [m["version"] for m in now["projects"][0]["migrations"]][-1] == "20250103000000"
    assert len(now["repos"]) == len(now["projects"]) == len(now["vercel"]) == 1


def test_plan_lists_creates_then_no_changes(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"plan-{unique}"
    build = app_copy(tmp_path)
    traffic_before = len(sandbox.traffic())
    planned = forge_runner.run(["plan", "--build-dir", str(build), "--name", name])
    assert planned.returncode == 0, planned.explain()
    changes = planned.result["changes"]
    assert "none" not in {c["action"] for c in changes}, changes
    kinds = {c["resource"] for c in changes}
    assert {"github.repo", "supabase.project", "vercel.project", "vercel.deployment"} <= kinds
    methods = {t["method"] for t in sandbox.traffic()[traffic_before:]}
    assert methods <= {"GET", "HEAD"}, f"plan wrote something: {methods}"
    assert mine(sandbox, name) == {"repos": [], "projects": [], "vercel": [], "env": []}

    assert_live(deploy(forge_runner, build, name))
    traffic_before = len(sandbox.traffic())
    after = forge_runner.run(["plan", "--build-dir", str(build), "--name", name])
    assert after.returncode == 0, after.explain()
    assert {c["action"] for c in after.result["changes"]} == {"none"}, after.result["changes"]
    writes = [
        (t["method"], t["path"])
        for t in sandbox.traffic()[traffic_before:]
        if t["method"] not in ("GET", "HEAD")
    ]
    # Only the exposure check's catalog read, in a read-only transaction.
    assert writes and all(
        m == "POST" and path.endswith("/database/query/read-only") for m, path in writes
    ), writes
    [exposure] = [c for c in after.result["changes"] if c["resource"] == "supabase.exposure"]
    assert exposure["app_tables"] == ["public.notes"] and exposure["exposure"]["errors"] == []


def test_teardown_removes_ours_and_is_repeatable(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"gone-{unique}"
    assert_live(deploy(forge_runner, app_copy(tmp_path), name))
    removed = forge_runner.run(["teardown", "--name", name])
    assert removed.returncode == 0, removed.explain()
    assert removed.result["removed"] == {
        "vercel": "deleted",
        "supabase": "deleted",
        "github": "deleted",
    }
    assert mine(sandbox, name) == {"repos": [], "projects": [], "vercel": [], "env": []}
    again = forge_runner.run(["teardown", "--name", name])
    assert again.result["removed"] == {"vercel": "absent", "supabase": "absent", "github": "absent"}


def test_a_build_that_needs_the_database_is_rebuilt_after_the_migrations(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    """The staged build starts before the migrations ran and fails reading `public.notes`; the
    pipeline rebuilds once the migrations are in, and only then moves production."""
    name = f"needs-db-{unique}"
    build = app_copy(tmp_path)
    (build / "forge-sandbox.json").write_text('{"build_reads_tables": ["public.notes"]}\n')
    result = deploy(forge_runner, build, name)
    payload = assert_live(result)
    failed = [e.payload for e in result.of(EventType.STEP_FAILED)]
    assert [f["step"] for f in failed] == ["vercel.build"], failed
    assert 'relation "public.notes" does not exist' in failed[0]["error"]
    rebuilt = step_info(result, "vercel.rebuild")
    migrated = step_info(result, "supabase.migrations")
    order = [e.payload["step"] for e in result.of(EventType.STEP_FINISHED)]
    assert order.index("supabase.migrations") < order.index("vercel.rebuild")
    assert migrated["applied"] and rebuilt["deployment"]
    states = {d["id"]: d["readyState"] for d in deployments(sandbox, name)}
    assert sorted(states.values()) == ["ERROR", "READY"]
    assert payload["health"]["ok"] is True


def test_a_build_without_migrations_skips_that_step(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    build = app_copy(tmp_path)
    shutil.rmtree(build / "supabase")
    result = deploy(forge_runner, build, f"nomig-{unique}")
    assert_live(result)
    skips = [e.payload for e in result.of(EventType.STEP_SKIPPED)]
    assert [s["step"] for s in skips] == ["supabase.migrations"], skips
    assert "supabase.migrations" not in {
        e.payload["step"] for e in result.of(EventType.STEP_STARTED)
    }
    assert result.result["migrations_applied"] == []
