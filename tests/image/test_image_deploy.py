"""Deploys through the runner image: the README's `docker run` command, for real, against the
sandbox.

The container is exactly `dispatcher.launchers.docker.spec`'s (hardened, read-only build mount,
tokens in the mounted secrets file), put on the host network so that 127.0.0.1 reaches the
sandbox; the files the sandbox's settings name (its CA, the supabase profile) are mounted
read-only at their own paths. stdout is parsed with the runner's own event parser.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dispatcher.core.secrets import split_env
from dispatcher.launchers.docker.spec import docker_run_argv, runner_container_spec
from runner.events import Event, EventType, parse_event
from runner.sealing import new_keypair
from tests.image.conftest import DOCKER, Containers
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.docker]


def digest(root: Path) -> str:
    """Content, names and modes of every file under `root`."""
    h = hashlib.sha256()
    for current, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(current) / name
            h.update(f"{path.relative_to(root)}\0{path.lstat().st_mode:o}\0".encode())
            h.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
    return h.hexdigest()


def deploy_argv(
    sandbox: SandboxProcess,
    image: str,
    made: Containers,
    build: Path,
    name: str,
    deploy_id: str,
    attempt: int,
    extra_env: dict[str, str] | None = None,
    resume: Path | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The `docker run` argv of one deploy attempt (what the README shows), and its spec."""
    env = {**runner_support.runner_env(sandbox), **(extra_env or {})}
    plain, secret = split_env(env)
    files = [plain["FORGE_CA_FILE"], plain["SUPABASE_PROFILE"]]
    command = ["deploy", "--build-dir", "/build", "--name", name]
    if resume is not None:
        files.append(str(resume))
        command += ["--resume", str(resume)]
    secrets_file = made.write_secrets(secret, deploy_id, attempt)
    spec = runner_container_spec(
        image,
        deploy_id,
        attempt,
        build,
        secrets_file,
        command,
        env=plain,
        read_only_files=files,
        network="host",
    )
    made.track(spec["name"])
    return docker_run_argv(spec, docker=DOCKER), spec


def parse(stdout: str) -> list[Event]:
    events = [parse_event(line) for line in stdout.splitlines() if line.strip()]
    assert events, "no event on stdout"
    return events


def assert_stream(events: list[Event], deploy_id: str) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.deploy_id for e in events} == {deploy_id}
    assert events[-1].type is EventType.EOF


def owned(sandbox: SandboxProcess, name: str) -> tuple[int, int, int]:
    res = sandbox.resources()
    return (
        sum(r["name"] == name for r in res["github"]["repos"]),
        sum(p["name"] == f"forge-{name}" for p in res["supabase"]["projects"]),
        sum(p["name"] == name for p in res["vercel"]["projects"]),
    )


def test_the_readme_docker_run_deploys_the_example_live(
    sandbox: SandboxProcess,
    runner_image: str,
    containers: Containers,
    tmp_path: Path,
    unique: str,
) -> None:
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build, symlinks=True)
    before = digest(build)
    name = f"img-{unique}"
    deploy_id = containers.new_deploy_id()
    argv, _ = deploy_argv(sandbox, runner_image, containers, build, name, deploy_id, 1)

    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    runner_support.CAPTURED.extend([result.stdout, result.stderr])
    explain = f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, explain
    events = parse(result.stdout)
    assert_stream(events, deploy_id)
    assert events[-1].payload == {"outcome": "live", "exit_code": 0}, explain
    results = [e for e in events if e.type is EventType.RESULT]
    assert results and results[-1].payload["outcome"] == "live"
    assert digest(build) == before, "the build directory changed during the deploy"
    assert owned(sandbox, name) == (1, 1, 1)


def test_docker_kill_mid_deploy_then_rerun_ends_live_without_duplicates(
    sandbox: SandboxProcess,
    runner_image: str,
    containers: Containers,
    tmp_path: Path,
    unique: str,
) -> None:
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build, symlinks=True)
    name = f"imk-{unique}"
    deploy_id = containers.new_deploy_id()
    public, private = new_keypair()
    keys = {"FORGE_SEAL_PUBLIC_KEY": public, "FORGE_SEAL_PRIVATE_KEY": private}

    argv, spec = deploy_argv(sandbox, runner_image, containers, build, name, deploy_id, 1, keys)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    seen: list[str] = []
    killed = False
    for line in process.stdout:
        seen.append(line)
        event = parse_event(line)
        if event.type is EventType.CHECKPOINT and event.payload["key"] == "supabase.ref":
            subprocess.run([DOCKER, "kill", spec["name"]], check=True, capture_output=True)
            killed = True
            break
    rest, stderr = process.communicate(timeout=120)
    seen.append(rest)
    runner_support.CAPTURED.extend([*seen, stderr])
    assert killed, (
        f"the run ended before the kill point:\n{''.join(seen)[-3000:]}\n{stderr[-3000:]}"
    )
    assert process.returncode == 137, stderr[-3000:]  # SIGKILL: no eof, as after a node loss
    events_file = tmp_path / "attempt-1.jsonl"
    events_file.write_text("".join(seen))
    events_file.chmod(0o644)

    argv, _ = deploy_argv(
        sandbox, runner_image, containers, build, name, deploy_id, 2, keys, resume=events_file
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    runner_support.CAPTURED.extend([result.stdout, result.stderr])
    explain = f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, explain
    events = parse(result.stdout)
    assert_stream(events, deploy_id)
    assert events[-1].payload == {"outcome": "live", "exit_code": 0}, explain
    assert owned(sandbox, name) == (1, 1, 1)
