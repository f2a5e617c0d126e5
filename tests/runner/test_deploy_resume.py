"""SIGKILL the runner (and everything it started) at many points; a new run, handed the killed
run's events and the sealing key, ends live with no duplicate and no migration applied twice."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.events import Event, EventType, parse_event
from runner.sealing import new_keypair
from tests.support.runner import CAPTURED, RunnerProcess, kill_runner, runner_pid
from tests.support.sandbox import SandboxProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def started(step: str) -> Callable[[Event], bool]:
    return lambda e: e.type is EventType.STEP_STARTED and e.payload["step"] == step


def finished(step: str) -> Callable[[Event], bool]:
    return lambda e: e.type is EventType.STEP_FINISHED and e.payload["step"] == step


def checkpoint(key: str) -> Callable[[Event], bool]:
    return lambda e: e.type is EventType.CHECKPOINT and e.payload["key"] == key


KILL_POINTS: dict[str, Callable[[Event], bool]] = {
    "after-prepare": finished("prepare"),
    "repo-ensured": checkpoint("github.repo"),
    "push-started": started("github.push"),
    "supabase-created": checkpoint("supabase.ref"),
    "keys-reading": started("supabase.keys"),
    "migrations-started": started("supabase.migrations"),
    "vercel-project": checkpoint("vercel.project_id"),
    "build-started": started("vercel.build"),
    "deployment-created": checkpoint("vercel.deployment_id"),
    "exposure-started": started("health.exposure"),
    "auth-urls-started": started("health.auth_urls"),
    "promote-started": started("vercel.promote"),
    "health-started": started("health"),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_killed_at_any_point_resumes_to_live_without_duplicates(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path, point: str
) -> None:
    name = f"k{point[:6].strip('-')}-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    public, private = new_keypair()
    keys = {"FORGE_SEAL_PUBLIC_KEY": public, "FORGE_SEAL_PRIVATE_KEY": private}
    args = ["deploy", "--build-dir", str(build), "--name", name]

    process, _audit = forge_runner.start(args, keys)
    assert process.stdout is not None
    seen: list[str] = []
    matched = False
    for line in process.stdout:
        seen.append(line)
        if KILL_POINTS[point](parse_event(line)):
            kill_runner(process)
            matched = True
            break
    rest, stderr = process.communicate(timeout=60)
    seen.append(rest)
    CAPTURED.extend([*seen, stderr])
    assert matched, f"the run ended before {point}:\n{''.join(seen)[-3000:]}\n{stderr[-3000:]}"
    assert process.returncode != 0
    events_file = tmp_path / "attempt-1.jsonl"
    events_file.write_text("".join(seen))

    resumed = forge_runner.run([*args, "--resume", str(events_file)], keys)
    assert resumed.returncode == 0, resumed.explain()
    assert resumed.eof.payload["outcome"] == "live"

    res = sandbox.resources()
    assert sum(r["name"] == name for r in res["github"]["repos"]) == 1
    projects = [p for p in res["supabase"]["projects"] if p["name"] == f"forge-{name}"]
    assert len(projects) == 1
    assert [m["version"] for m in projects[0]["migrations"]] == ["20250101000000", "20250102000000"]
    assert sum(p["name"] == name for p in res["vercel"]["projects"]) == 1


def test_sigterm_cancels_cleanly_and_a_new_attempt_finishes(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    name = f"term-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    args = ["deploy", "--build-dir", str(build), "--name", name]
    public, private = new_keypair()
    keys = {"FORGE_SEAL_PUBLIC_KEY": public, "FORGE_SEAL_PRIVATE_KEY": private}
    sandbox.set_time_scale(0.05)  # provisioning takes 4.5 s: SIGTERM lands while waiting
    process, _audit = forge_runner.start(args, keys)
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if started("supabase.healthy")(parse_event(line)):
            os.kill(runner_pid(process), signal.SIGTERM)
            break
    rest, stderr = process.communicate(timeout=60)
    CAPTURED.extend([*seen, rest, stderr])
    events = [parse_event(line) for line in "".join([*seen, rest]).splitlines()]
    assert process.returncode == 4, stderr[-3000:]
    assert events[-1].type is EventType.EOF
    assert events[-1].payload == {"outcome": "cancelled", "exit_code": 4}
    assert events[-2].type is EventType.RESULT and events[-2].payload["outcome"] == "cancelled"
    events_file = tmp_path / "attempt-1.jsonl"
    events_file.write_text("".join([*seen, rest]))
    resumed = forge_runner.run([*args, "--resume", str(events_file)], keys)
    assert resumed.returncode == 0, resumed.explain()
    projects = [
        p for p in sandbox.resources()["supabase"]["projects"] if p["name"] == f"forge-{name}"
    ]
    assert len(projects) == 1
    assert [m["version"] for m in projects[0]["migrations"]] == ["20250101000000", "20250102000000"]
