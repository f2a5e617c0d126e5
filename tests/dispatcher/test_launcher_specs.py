"""The launchers' specs, as data: no Docker, no process. Names carry the attempt; labels carry
the deploy; no secret value reaches an environment, an argv, a label or the `docker run` line;
the build directory is read-only; the resume events are a read-only file; the hardening flags
of the image issue are all there."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from dispatcher.core.ports import RunSpec
from dispatcher.core.secrets import split_env
from dispatcher.launchers.common import (
    BUILD_MOUNT,
    LABEL_MANAGED,
    refuse_secret_values,
    runner_command,
    split_lines,
)
from dispatcher.launchers.docker.files import (
    EVENTS_COPY_MOUNT,
    RESUME_MOUNT,
    events_copy_file,
    resume_file,
    secrets_file,
)
from dispatcher.launchers.docker.spec import (
    SECRETS_MOUNT,
    docker_container_spec,
    docker_run_command,
    handle_fields,
)
from dispatcher.launchers.process.plan import default_base_env, process_plan

SECRETS = {
    "GH_TOKEN": "ghp_SPECTEST0secret0github0token000",
    "SUPABASE_ACCESS_TOKEN": "sbp_spectest0secret0supabase0token0",
    "VERCEL_TOKEN": "spectest0secret0vercel0token0000",
    "FORGE_SEAL_PRIVATE_KEY": "c2VhbHRlc3Qwc2VjcmV0MHByaXZhdGUwa2V5MDA=",
}
CONFIG = {"GH_ORG": "forge-apps", "SUPABASE_ORG_ID": "forge-org", "VERCEL_ORG_ID": "team_forge"}
IMAGE = "forge-runner:dev"
WORKDIR = Path("/var/lib/forge/runs")
RUNNER = ("/opt/venv/bin/python", "-m", "runner.cli")


def run_spec(attempt: int = 1, resume: str | None = None, **overrides: Any) -> RunSpec:
    values: dict[str, Any] = {
        "deployment_id": "dep_0123456789abcdef01234567",
        "attempt": attempt,
        "build_dir": Path("/srv/builds/shop"),
        "args": ("deploy", "--name", "shop"),
        "env": CONFIG,
        "secrets": SECRETS,
        "resume_events": resume,
    }
    values.update(overrides)
    return RunSpec(**values)


def no_secret_in(content: Any) -> None:
    text = json.dumps(content, default=str)
    for key, value in SECRETS.items():
        assert value not in text, f"{key}'s value is in {text[:200]}"


# ---- forge-runner arguments -----------------------------------------------------------------


def test_deploy_gets_build_dir_and_resume() -> None:
    spec = run_spec()
    assert runner_command(spec, "/build", None) == [
        "deploy",
        "--name",
        "shop",
        "--build-dir",
        "/build",
    ]
    assert runner_command(spec, "/build", "/r.jsonl")[-2:] == ["--resume", "/r.jsonl"]


def test_teardown_gets_no_build_dir_and_cannot_resume() -> None:
    spec = run_spec(args=("teardown", "--name", "shop"))
    assert runner_command(spec, "/build", None) == ["teardown", "--name", "shop"]
    with pytest.raises(ValueError, match="only deploy resumes"):
        runner_command(spec, "/build", "/r.jsonl")


@pytest.mark.parametrize(
    "args",
    [(), ("deploy", "--build-dir", "/elsewhere"), ("deploy", "--resume=/x"), ("plan", "--resume")],
)
def test_args_the_launcher_owns_are_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"empty|launcher sets it"):
        runner_command(run_spec(args=args), "/build", None)


# ---- Docker ---------------------------------------------------------------------------------


def test_docker_name_and_labels_carry_deploy_and_attempt() -> None:
    first = docker_container_spec(run_spec(1), IMAGE)
    second = docker_container_spec(run_spec(2), IMAGE)
    assert first["name"] == "forge-deploy-dep_0123456789abcdef01234567-1"
    assert second["name"] == "forge-deploy-dep_0123456789abcdef01234567-2"
    assert second["labels"] == {
        "forge.deploy_id": "dep_0123456789abcdef01234567",
        "forge.attempt": "2",
        LABEL_MANAGED: "true",
    }
    assert handle_fields(second["labels"]) == ("dep_0123456789abcdef01234567", 2)


@pytest.mark.parametrize(
    "labels",
    [
        {"forge.deploy_id": "d", "forge.attempt": "1"},  # not managed
        {"forge.deploy_id": "d", "forge.attempt": "x", LABEL_MANAGED: "true"},
        {"forge.deploy_id": "a b", "forge.attempt": "1", LABEL_MANAGED: "true"},
        {"forge.attempt": "1", LABEL_MANAGED: "true"},
    ],
)
def test_labels_not_ours_give_no_handle(labels: dict[str, str]) -> None:
    assert handle_fields(labels) is None


def test_docker_spec_holds_no_secret_value_and_mounts_the_file() -> None:
    spec = docker_container_spec(run_spec(), IMAGE)
    no_secret_in(spec)
    assert not [k for k in spec["environment"] if k in SECRETS]
    assert spec["environment"]["FORGE_ENV_FILE"] == SECRETS_MOUNT
    assert spec["environment"]["FORGE_DEPLOY_ID"] == "dep_0123456789abcdef01234567"
    secrets = [m for m in spec["mounts"] if m["Target"] == SECRETS_MOUNT]
    assert secrets == [
        {
            "Type": "bind",
            "Source": str(secrets_file(run_spec().deployment_id, 1)),
            "Target": SECRETS_MOUNT,
            "ReadOnly": True,
        }
    ]
    line = docker_run_command(spec)
    no_secret_in(line)
    assert "--read-only" in shlex.split(line)


def test_docker_build_dir_is_read_only_at_build() -> None:
    spec = docker_container_spec(run_spec(), IMAGE)
    build = [m for m in spec["mounts"] if m["Target"] == BUILD_MOUNT]
    assert build == [
        {"Type": "bind", "Source": "/srv/builds/shop", "Target": BUILD_MOUNT, "ReadOnly": True}
    ]
    assert spec["command"] == ["deploy", "--name", "shop", "--build-dir", BUILD_MOUNT]


def test_docker_resume_events_are_a_read_only_file() -> None:
    spec = docker_container_spec(run_spec(2, resume='{"v": 1}\n'), IMAGE)
    resume = [m for m in spec["mounts"] if m["Target"] == RESUME_MOUNT]
    assert resume == [
        {
            "Type": "bind",
            "Source": str(resume_file(run_spec(2).deployment_id, 2)),
            "Target": RESUME_MOUNT,
            "ReadOnly": True,
        }
    ]
    assert spec["command"][-2:] == ["--resume", RESUME_MOUNT]
    assert "--resume" not in docker_container_spec(run_spec(2), IMAGE)["command"]


def test_docker_hardening_is_all_there() -> None:
    spec = docker_container_spec(run_spec(), IMAGE, network="host")
    assert spec["user"] == "10001:10001"
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert spec["security_opt"] == ["no-new-privileges:true"]
    assert spec["memswap_limit"] == spec["mem_limit"] > 0
    assert spec["pids_limit"] > 0 and spec["nano_cpus"] > 0
    assert set(spec["tmpfs"]) == {"/tmp", "/work", "/home/forge"}
    assert spec["network_mode"] == "host"
    # One host file is writable: the runner's copy of its events, in the attempt's folder.
    writable = [m for m in spec["mounts"] if not m["ReadOnly"]]
    assert writable == [
        {
            "Type": "bind",
            "Source": str(events_copy_file(run_spec().deployment_id, 1)),
            "Target": EVENTS_COPY_MOUNT,
            "ReadOnly": False,
        }
    ]
    assert spec["environment"]["FORGE_EVENTS_COPY"] == EVENTS_COPY_MOUNT
    assert not [m for m in spec["mounts"] if "docker.sock" in m["Source"]]


def test_docker_read_only_files_are_mounted_at_their_path() -> None:
    spec = docker_container_spec(run_spec(), IMAGE, read_only_files=["/etc/forge/ca.pem"])
    ca = [m for m in spec["mounts"] if m["Target"] == "/etc/forge/ca.pem"]
    assert ca == [
        {
            "Type": "bind",
            "Source": "/etc/forge/ca.pem",
            "Target": "/etc/forge/ca.pem",
            "ReadOnly": True,
        }
    ]


@pytest.mark.parametrize("name", ["GH_TOKEN", "DB_PASSWORD", "SOME_API_KEY"])
def test_a_secret_named_env_is_refused_by_both_backends(name: str) -> None:
    spec = run_spec(env={**CONFIG, name: "value0000000"})
    with pytest.raises(ValueError, match="looks like a secret"):
        docker_container_spec(spec, IMAGE)
    with pytest.raises(ValueError, match="looks like a secret"):
        process_plan(spec, WORKDIR, RUNNER, {"PATH": "/usr/bin"})


def test_a_secret_value_in_args_or_env_is_refused() -> None:
    leaky = run_spec(args=("deploy", "--name", SECRETS["VERCEL_TOKEN"]))
    with pytest.raises(ValueError, match="VERCEL_TOKEN shows in the command"):
        docker_container_spec(leaky, IMAGE)
    with pytest.raises(ValueError, match="VERCEL_TOKEN shows in the argv"):
        process_plan(leaky, WORKDIR, RUNNER, {"PATH": "/usr/bin"})
    copied = run_spec(env={**CONFIG, "GH_ORG_NOTE": SECRETS["GH_TOKEN"]})
    with pytest.raises(ValueError, match="GH_TOKEN shows in the environment"):
        docker_container_spec(copied, IMAGE)
    with pytest.raises(ValueError, match="GH_TOKEN shows in the environment"):
        refuse_secret_values(SECRETS, {"environment": {"X": f"prefix {SECRETS['GH_TOKEN']}"}})


# ---- local processes ------------------------------------------------------------------------


def test_process_plan_paths_are_per_attempt_and_inside_the_attempt_folder() -> None:
    first = process_plan(run_spec(1), WORKDIR, RUNNER, {"PATH": "/usr/bin"})
    second = process_plan(run_spec(2), WORKDIR, RUNNER, {"PATH": "/usr/bin"})
    assert first.attempt_dir == WORKDIR / "forge-deploy-dep_0123456789abcdef01234567-1"
    assert second.attempt_dir.name.endswith("-2")
    for path in (first.home, first.tmp, first.cwd, first.stdout, first.stderr, first.secrets_file):
        assert path.parent == first.attempt_dir
    assert first.stdout.name == "stdout.jsonl" and first.stderr.name == "stderr.log"


def test_process_argv_runs_the_runner_under_the_wrapper_with_the_build_dir() -> None:
    plan = process_plan(run_spec(), WORKDIR, RUNNER, {"PATH": "/usr/bin"}, python="/py")
    argv = list(plan.argv)
    assert argv[:3] == ["/py", "-I", "-S"] and argv[3].endswith("_wrap.py")
    assert argv[4:6] == [str(plan.attempt_dir), "--"]
    assert argv[6:] == [*RUNNER, "deploy", "--name", "shop", "--build-dir", "/srv/builds/shop"]
    assert plan.resume_file is None


def test_process_resume_is_a_file_in_the_attempt_folder() -> None:
    plan = process_plan(run_spec(2, resume="{}\n"), WORKDIR, RUNNER, {"PATH": "/usr/bin"})
    assert plan.resume_file == plan.attempt_dir / "resume.jsonl"
    assert list(plan.argv[-2:]) == ["--resume", str(plan.resume_file)]


def test_process_env_is_minimal_and_holds_no_secret() -> None:
    base = default_base_env(
        {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "GH_TOKEN": SECRETS["GH_TOKEN"],
            "AWS_SECRET_ACCESS_KEY": "x" * 20,
            "FORGE_HOOK_SECRET": "hook" * 8,
            "DATABASE_URL": "postgresql://u:p@h/db",
        }
    )
    assert set(base) == {"PATH", "LANG"}
    assert base["PATH"].endswith("/usr/bin:/bin")
    plan = process_plan(run_spec(), WORKDIR, RUNNER, base)
    no_secret_in(plan.env)
    no_secret_in(plan.argv)
    assert set(plan.env) == {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "FORGE_DEPLOY_ID",
        "FORGE_ENV_FILE",
        *CONFIG,
    }
    assert plan.env["HOME"] == str(plan.home)
    assert plan.env["FORGE_ENV_FILE"] == str(plan.secrets_file)
    assert plan.env["FORGE_DEPLOY_ID"] == "dep_0123456789abcdef01234567"


def test_process_fixed_variables_cannot_be_redirected() -> None:
    spec = run_spec(env={**CONFIG, "FORGE_ENV_FILE": "/tmp/other.env"})
    with pytest.raises(ValueError, match="FORGE_ENV_FILE is set by the launcher"):
        process_plan(spec, WORKDIR, RUNNER, {"PATH": "/usr/bin"})
    with pytest.raises(ValueError, match="absolute"):
        process_plan(run_spec(build_dir=Path("rel")), WORKDIR, RUNNER, {})


def test_split_env_of_the_sandbox_shape_feeds_both_specs() -> None:
    plain, secret = split_env({**CONFIG, **SECRETS, "FORGE_CA_FILE": "/ca.pem"})
    spec = run_spec(env=plain, secrets=secret)
    no_secret_in(docker_container_spec(spec, IMAGE))
    no_secret_in(process_plan(spec, WORKDIR, RUNNER, {}).env)


# ---- the stream's lines ---------------------------------------------------------------------


def test_split_lines_rejoins_chunks_cut_anywhere() -> None:
    text = '{"a": 1}\n{"b": "é"}\nlast without newline'
    data = text.encode()
    for size in (1, 2, 3, 7, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(split_lines(chunks)) == text.split("\n")
    assert list(split_lines([b"x\n", b"\xff\n"])) == ["x", "\ufffd"]
