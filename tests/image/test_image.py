"""The runner image, for real: the pinned CLIs run as the non-root user, and a container started
from `dispatcher.launchers.docker.spec` is hardened as seen from outside (`docker inspect`) and
from inside (capabilities, read-only filesystem, read-only build mount), with its tokens read from
the mounted secrets file and shown nowhere in the inspect output.

No test here reaches a network: the containers run with `--network none`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dispatcher.launchers.docker.spec import Limits, docker_run_argv, runner_container_spec
from tests.image.conftest import DOCKER, Containers

pytestmark = pytest.mark.docker

VENV_PYTHON = "/opt/forge/venv/bin/python"

# Fake tokens, distinctive enough to be searched for in the inspect output.
TOKENS = {
    "GH_TOKEN": "ghp_IMAGETEST0secret0github0token000",
    "SUPABASE_ACCESS_TOKEN": "sbp_imagetest0secret0supabase0token0",
    "VERCEL_TOKEN": "imagetest0secret0vercel0token0000",
}
CONFIG = {
    "GH_ORG": "forge-apps",
    "SUPABASE_ORG_ID": "forge-org",
    "VERCEL_ORG_ID": "team_forge",
}


def run_spec(
    client: Any,
    made: Containers,
    image: str,
    build: Path,
    command: list[str],
    entrypoint: list[str] | None = None,
    limits: Limits | None = None,
) -> tuple[Any, str, str, int]:
    """Create and start the spec's container, wait for it; (container, stdout, stderr, code)."""
    deploy_id = made.new_deploy_id()
    secrets = made.write_secrets(TOKENS, deploy_id, 1)
    spec = runner_container_spec(
        image, deploy_id, 1, build, secrets, command, env=CONFIG, network="none", limits=limits
    )
    made.track(spec["name"])
    if entrypoint is not None:
        spec["entrypoint"] = entrypoint
    box = client.containers.create(**spec)
    box.start()
    code = box.wait(timeout=120)["StatusCode"]
    out = box.logs(stdout=True, stderr=False).decode(errors="replace")
    err = box.logs(stdout=False, stderr=True).decode(errors="replace")
    return box, out, err, code


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "public").mkdir(parents=True)
    (root / "package.json").write_text('{"name": "image-test", "private": true}\n')
    (root / "public" / "index.html").write_text("<h1>hello</h1>\n")
    return root


@pytest.mark.parametrize(
    ("entrypoint", "expected"),
    [
        (["gh", "--version"], "gh version 2.23.0"),
        (["supabase", "--version"], "2.117.0"),
        (["vercel", "--version"], "58.10.0"),
        (["forge-runner", "--help"], "Usage: forge-runner"),
        (["node", "--version"], "v24."),
        (["git", "--version"], "git version"),
    ],
)
def test_tools_run_as_the_non_root_user(
    docker_client: Any,
    runner_image: str,
    containers: Containers,
    build: Path,
    entrypoint: list[str],
    expected: str,
) -> None:
    _, out, err, code = run_spec(
        docker_client, containers, runner_image, build, entrypoint[1:], entrypoint[:1]
    )
    assert code == 0, f"{entrypoint}: exit {code}\n{out}\n{err}"
    assert out.startswith(expected) or out.splitlines()[0].strip() == expected, out


def test_image_metadata(docker_client: Any, runner_image: str) -> None:
    image = docker_client.images.get(runner_image)
    config = image.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["forge-runner"]
    labels = config["Labels"]
    for key in ("source", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label {key} missing: {labels}"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    env = dict(item.split("=", 1) for item in config["Env"])
    for name in (
        "GH_NO_UPDATE_NOTIFIER",
        "SUPABASE_TELEMETRY_DISABLED",
        "SUPABASE_NO_UPDATE_NOTIFIER",
        "VERCEL_TELEMETRY_DISABLED",
        "NO_UPDATE_NOTIFIER",
    ):
        assert env.get(name) == "1", f"{name} not set in the image: {env}"
    assert image.attrs["Size"] <= 800_000_000, f"image is {image.attrs['Size'] / 1e6:.0f} MB"


def test_inspect_shows_the_hardening_and_no_token(
    docker_client: Any, runner_image: str, containers: Containers, build: Path
) -> None:
    limits = Limits(memory="768m", cpus=1.5, pids=256)
    box, out, err, code = run_spec(
        docker_client,
        containers,
        runner_image,
        build,
        ["deploy", "--build-dir", "/build", "--name", "bad;name"],
        limits=limits,
    )
    assert code == 2, f"exit {code}\n{out}\n{err}"  # bad input, after reading its settings
    box.reload()
    attrs = box.attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Memory"] == 768 * 1024**2
    assert host["MemorySwap"] == 768 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000
    assert host["PidsLimit"] == 256
    assert set(host["Tmpfs"]) == {"/tmp", "/work", "/home/forge"}
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert set(mounts) == {"/build", "/run/forge/secrets.env"}
    assert mounts["/build"]["RW"] is False
    assert mounts["/run/forge/secrets.env"]["RW"] is False
    assert mounts["/run/forge/secrets.env"]["Source"].startswith("/dev/shm/")
    assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["FORGE_ENV_FILE"] == "/run/forge/secrets.env"
    for name in TOKENS:
        assert name not in env
    document = json.dumps(attrs)
    for name, value in TOKENS.items():
        assert value not in document, f"{name}'s value is in docker inspect"
        assert value not in out and value not in err, f"{name}'s value reached the output"
    # The runner read the settings (tokens included) and refused the name: its own events.
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events[-1]["type"] == "eof"
    assert events[-1]["payload"]["outcome"] == "bad_input"


PROBE = r"""
import json, os, pathlib, subprocess
from runner import settings

def writable(path):
    try:
        pathlib.Path(path, ".probe").write_text("x")
        return True
    except OSError:
        return False

status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
              if ":\t" in line)
mounts = {line.split()[1]: line.split()[3].split(",") for line in open("/proc/self/mounts")}
s = settings.load()
print(json.dumps({
    "read_only_mounts": sorted(p for p, o in mounts.items() if "ro" in o and p in
                               ("/", "/build", "/run/forge/secrets.env", "/tmp", "/work")),
    "uid": os.getuid(), "gid": os.getgid(),
    "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "writable": {p: writable(p) for p in ["/", "/etc", "/opt/forge", "/build", "/run/forge",
                                         "/tmp", "/work", "/home/forge"]},
    "home": os.environ["HOME"],
    "tokens_loaded": [s.github.token == os.environ["EXPECT_GH"],
                      s.supabase.token == os.environ["EXPECT_SB"],
                      s.vercel.token == os.environ["EXPECT_VC"]],
    "secrets_env_mode": oct(os.stat("/run/forge/secrets.env").st_mode & 0o777),
    "docker_sock": [p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)],
    "sudo_like": subprocess.run(["sh", "-c", "command -v sudo su-exec doas || true"],
                                capture_output=True, text=True).stdout.split(),
}))
"""


def test_inside_the_container(
    docker_client: Any, runner_image: str, containers: Containers, build: Path
) -> None:
    deploy_id = containers.new_deploy_id()
    secrets = containers.write_secrets(TOKENS, deploy_id, 1)
    # The expected values travel as plain env only in this probe, to compare inside.
    spec = runner_container_spec(
        runner_image,
        deploy_id,
        1,
        build,
        secrets,
        ["-c", PROBE],
        env=CONFIG,
        network="none",
    )
    spec["entrypoint"] = [VENV_PYTHON]
    spec["environment"].update(
        EXPECT_GH=TOKENS["GH_TOKEN"],
        EXPECT_SB=TOKENS["SUPABASE_ACCESS_TOKEN"],
        EXPECT_VC=TOKENS["VERCEL_TOKEN"],
    )
    containers.track(spec["name"])
    box = docker_client.containers.create(**spec)
    box.start()
    code = box.wait(timeout=60)["StatusCode"]
    out = box.logs(stdout=True, stderr=False).decode()
    assert code == 0, box.logs().decode()[-3000:]
    seen = json.loads(out)
    assert (seen["uid"], seen["gid"]) == (10001, 10001)
    assert int(seen["cap_eff"], 16) == 0
    assert int(seen["cap_bnd"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert seen["writable"] == {
        "/": False,
        "/etc": False,
        "/opt/forge": False,
        "/build": False,
        "/run/forge": False,
        "/tmp": True,
        "/work": True,
        "/home/forge": True,
    }
    assert seen["read_only_mounts"] == ["/", "/build", "/run/forge/secrets.env"]
    assert seen["home"] == "/home/forge"
    assert seen["tokens_loaded"] == [True, True, True]
    assert seen["secrets_env_mode"] == "0o400"
    assert seen["docker_sock"] == []
    assert seen["sudo_like"] == []


def test_memory_and_pids_limits_hold(
    docker_client: Any, runner_image: str, containers: Containers, build: Path
) -> None:
    """A fork bomb stops at the pids limit; the container survives to report it."""
    script = (
        "import os\n"
        "n = 0\n"
        "try:\n"
        "    while n < 1000:\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(30); os._exit(0)\n"
        "        n += 1\n"
        "except OSError:\n"
        "    pass\n"
        "print(n)\n"
        "os._exit(0)\n"
    )
    _, out, err, code = run_spec(
        docker_client,
        containers,
        runner_image,
        build,
        ["-c", script],
        [VENV_PYTHON],
        limits=Limits(pids=64),
    )
    assert code == 0, err
    assert 0 < int(out.strip()) < 64


def test_the_docker_run_command_starts_the_same_container(
    runner_image: str, containers: Containers, build: Path
) -> None:
    """What the README and the dispatcher print, run as printed."""
    deploy_id = containers.new_deploy_id()
    secrets = containers.write_secrets(TOKENS, deploy_id, 1)
    spec = runner_container_spec(
        runner_image,
        deploy_id,
        1,
        build,
        secrets,
        ["deploy", "--build-dir", "/build", "--name", "bad;name"],
        env=CONFIG,
        network="none",
    )
    containers.track(spec["name"])
    result = subprocess.run(
        docker_run_argv(spec, docker=DOCKER),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert events[-1]["type"] == "eof"
    assert events[-1]["deploy_id"] == deploy_id
    assert "shell metacharacters" in result.stderr
    for value in TOKENS.values():
        assert value not in result.stdout + result.stderr
