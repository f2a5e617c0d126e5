"""The hardened container of one deploy, as data: Docker SDK kwargs and the equivalent `docker run`.

`runner_container_spec(...)` is a pure function returning the keyword arguments of the Docker
SDK's `containers.create(**spec)` / `containers.run(**spec, detach=True)`. The container:

- runs as the image's non-root user (`RUNNER_UID`), with a read-only root filesystem and
  size-limited tmpfs for `/tmp` (the runner's work copy), `/work` (its working directory) and
  its HOME (the CLIs' config);
- drops every capability, sets `no-new-privileges`, and has memory (no swap), CPU and pids
  limits;
- sees the build directory read-only at `/build`, and no Docker socket;
- receives its tokens in a `KEY=VALUE` file bind-mounted read-only at `/run/forge/secrets.env`
  (`FORGE_ENV_FILE` names it; `runner.settings` reads it at start), never as `-e TOKEN=value`,
  so `docker inspect` shows a path and no token. Only non-secret configuration goes in the
  environment; a secret-looking name there is refused;
- is named `forge-deploy-<deploy id>-<attempt>` and labelled with both, so a retried create
  finds its container and a retry after a failure never collides with the failed attempt.

`docker_run_argv(spec)` / `docker_run_command(spec)` give the same container as one `docker run`
line, which a person runs to replay a deploy. `write_secrets_file` is the one effect here: it
makes the host-side secrets file on a tmpfs (`/dev/shm`), readable only by the container's uid.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNNER_UID = 10001
RUNNER_GID = 10001
BUILD_MOUNT = "/build"
SECRETS_MOUNT = "/run/forge/secrets.env"
WORK_DIR = "/work"
HOME_DIR = "/home/forge"
# A tmpfs on the host: the file never reaches a disk. Its folder is checked to be ours.
SECRETS_ROOT = Path("/dev/shm")  # noqa: S108

LABEL_DEPLOY_ID = "forge.deploy_id"
LABEL_ATTEMPT = "forge.attempt"

_DEPLOY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^(\d+)([kmg]?)$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

# Names whose values are secrets: they go in the secrets file, never in the environment.
SECRET_NAMES = frozenset(
    {"GH_TOKEN", "GH_ENTERPRISE_TOKEN", "SUPABASE_ACCESS_TOKEN", "VERCEL_TOKEN"}
)
_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY)$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return name in SECRET_NAMES or bool(_SECRET_NAME.search(name))


def split_env(values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret): what may go in the container's environment, what goes in the file."""
    plain = {k: v for k, v in values.items() if not is_secret_name(k)}
    secret = {k: v for k, v in values.items() if is_secret_name(k)}
    return plain, secret


@dataclass(frozen=True)
class Limits:
    """Resource limits of one deploy container. Sizes are Docker-style: `512m`, `2g`."""

    memory: str = "2g"  # swap is off: --memory-swap equals --memory
    cpus: float = 1.0
    pids: int = 512
    tmp_size: str = "1g"  # /tmp: the work copy of the build lives here (counts as memory)
    work_size: str = "256m"  # /work, the working directory
    home_size: str = "256m"  # HOME: the CLIs' config and caches


def size_bytes(size: str) -> int:
    """`512m` -> 536870912. Raises ValueError naming the value."""
    match = _SIZE.match(size.strip().lower())
    if not match:
        raise ValueError(f"size {size!r} is malformed: expected e.g. 512m or 2g")
    return int(match.group(1)) * _UNITS[match.group(2)]


def container_name(deploy_id: str, attempt: int) -> str:
    """`forge-deploy-<id>-<attempt>`: deterministic, distinct per attempt."""
    if not _DEPLOY_ID.match(deploy_id):
        raise ValueError(f"deploy id {deploy_id!r} is malformed: 1-64 of A-Z a-z 0-9 _ . -")
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")
    return f"forge-deploy-{deploy_id}-{attempt}"


def _tmpfs(size: str, mode: str, owner: bool) -> str:
    options = ["rw", "nosuid", "nodev", f"size={_size_flag(size_bytes(size))}", f"mode={mode}"]
    if owner:
        options += [f"uid={RUNNER_UID}", f"gid={RUNNER_GID}"]
    return ",".join(options)


def _bind(source: str | Path, target: str) -> dict[str, Any]:
    """A read-only bind mount in the Engine API's form (the SDK passes dicts through)."""
    return {"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": True}


def runner_container_spec(
    image: str,
    deploy_id: str,
    attempt: int,
    build_dir: str | Path,
    secrets_file: str | Path,
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    read_only_files: Sequence[str | Path] = (),
    network: str = "bridge",
    limits: Limits | None = None,
) -> dict[str, Any]:
    """Docker SDK `containers.create` kwargs for the runner container of one deploy attempt.

    `build_dir` and `secrets_file` are absolute host paths; `command` is what follows the
    `forge-runner` entrypoint (e.g. `["deploy", "--build-dir", "/build", "--name", "shop"]`).
    `env` is non-secret configuration (URLs, org ids); `FORGE_DEPLOY_ID` and `FORGE_ENV_FILE`
    are set here. `read_only_files` are host files the configuration names (a CA file), each
    mounted read-only at its own path. `network` is `bridge` in production, `host` in tests.
    """
    limits = limits or Limits()
    name = container_name(deploy_id, attempt)
    for label, path in (("build_dir", build_dir), ("secrets_file", secrets_file)):
        if not Path(path).is_absolute():
            raise ValueError(f"{label} must be an absolute host path, got {str(path)!r}")
    fixed = {"FORGE_DEPLOY_ID": deploy_id, "FORGE_ENV_FILE": SECRETS_MOUNT}
    environment: dict[str, str] = {}
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment name {key!r} is malformed")
        if is_secret_name(key):
            raise ValueError(
                f"{key} looks like a secret: put it in the secrets file, not in the environment"
                " (docker inspect shows the environment)"
            )
        if key in fixed and value != fixed[key]:
            raise ValueError(f"{key} is set by the container spec to {fixed[key]!r}, got {value!r}")
        environment[key] = value
    environment.update(fixed)

    mounts = [_bind(build_dir, BUILD_MOUNT), _bind(secrets_file, SECRETS_MOUNT)]
    taken = {BUILD_MOUNT, SECRETS_MOUNT}
    for item in read_only_files:
        path = str(item)
        if not Path(path).is_absolute():
            raise ValueError(f"read-only file {path!r} must be an absolute path")
        if path in taken or path.startswith(("/build/", "/run/forge/")):
            raise ValueError(f"read-only file {path!r} would shadow a mount of the spec")
        taken.add(path)
        mounts.append(_bind(path, path))
    if any(m["Source"] in ("/var/run/docker.sock", "/run/docker.sock") for m in mounts):
        raise ValueError("the Docker socket is never mounted into a deploy container")

    memory = size_bytes(limits.memory)
    if memory < 64 * 1024**2 or limits.cpus <= 0 or limits.pids < 16:
        raise ValueError("limits: memory must be at least 64m, cpus > 0 and pids at least 16")
    return {
        "image": image,
        "command": list(command),
        "name": name,
        "labels": {LABEL_DEPLOY_ID: deploy_id, LABEL_ATTEMPT: str(attempt)},
        "user": f"{RUNNER_UID}:{RUNNER_GID}",
        "working_dir": WORK_DIR,
        "environment": environment,
        "read_only": True,
        "tmpfs": {
            "/tmp": _tmpfs(limits.tmp_size, "1777", owner=False),  # noqa: S108 - in the container
            WORK_DIR: _tmpfs(limits.work_size, "0700", owner=True),
            HOME_DIR: _tmpfs(limits.home_size, "0700", owner=True),
        },
        "mounts": mounts,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": round(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "network_mode": network,
        "stdin_open": False,
        "tty": False,
    }


def _size_flag(value: int) -> str:
    for unit in ("g", "m", "k"):
        if value % _UNITS[unit] == 0:
            return f"{value // _UNITS[unit]}{unit}"
    return str(value)


def docker_run_argv(
    spec: Mapping[str, Any], *, docker: str = "docker", rm: bool = True
) -> list[str]:
    """The `docker run` argv that starts the same container as `spec` (stdout: the events)."""
    argv = [docker, "run"]
    if rm:
        argv.append("--rm")
    argv += ["--name", spec["name"]]
    for key, value in spec["labels"].items():
        argv += ["--label", f"{key}={value}"]
    argv += ["--user", spec["user"], "--workdir", spec["working_dir"]]
    if spec["read_only"]:
        argv.append("--read-only")
    for path, options in spec["tmpfs"].items():
        argv += ["--tmpfs", f"{path}:{options}"]
    for mount in spec["mounts"]:
        ro = ",readonly" if mount.get("ReadOnly") else ""
        argv += ["--mount", f"type={mount['Type']},src={mount['Source']},dst={mount['Target']}{ro}"]
    for cap in spec["cap_drop"]:
        argv += ["--cap-drop", cap]
    for option in spec["security_opt"]:
        argv += ["--security-opt", option]
    argv += [
        "--memory",
        _size_flag(spec["mem_limit"]),
        "--memory-swap",
        _size_flag(spec["memswap_limit"]),
        "--cpus",
        f"{spec['nano_cpus'] / 1e9:g}",
        "--pids-limit",
        str(spec["pids_limit"]),
        "--network",
        spec["network_mode"],
    ]
    for key, value in spec["environment"].items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, spec["image"], *spec["command"]]


def docker_run_command(spec: Mapping[str, Any], *, docker: str = "docker", rm: bool = True) -> str:
    """`docker_run_argv` as one shell-quoted line, for the README and the dispatcher's log."""
    return shlex.join(docker_run_argv(spec, docker=docker, rm=rm))


# ---- the one effect: the host-side secrets file ------------------------------------------------


def format_env_file(values: Mapping[str, str]) -> str:
    """`KEY='value'` lines that `runner.settings` (python-dotenv) reads back exactly.

    Refuses what cannot round-trip: a newline or NUL in a value, and `${` (python-dotenv
    expands variables in values)."""
    lines = []
    for key, value in values.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment name {key!r} is malformed")
        if any(c in value for c in "\n\r\0") or "${" in value:
            raise ValueError(f"the value of {key} cannot go in an env file (newline, NUL or ${{)")
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        lines.append(f"{key}='{escaped}'\n")
    return "".join(lines)


def secrets_dir(deploy_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    return root / container_name(deploy_id, attempt)


def write_secrets_file(
    values: Mapping[str, str],
    deploy_id: str,
    attempt: int,
    *,
    root: Path = SECRETS_ROOT,
    uid: int = RUNNER_UID,
    gid: int = RUNNER_GID,
) -> Path:
    """Write `values` to `<root>/forge-deploy-<id>-<attempt>/secrets.env`: the directory 0700
    (its owner: whoever runs the dispatcher), the file 0400 owned by the container's uid.
    Returns the file's path, for `runner_container_spec(secrets_file=...)`. Run as root (or as
    `uid` itself): otherwise the file stays the caller's and the container cannot read it."""
    text = format_env_file(values)
    folder = secrets_dir(deploy_id, attempt, root)
    folder.mkdir(mode=0o700, parents=False, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{folder} exists and is not a directory of ours: refusing to use it")
    folder.chmod(0o700)
    path = folder / "secrets.env"
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    try:
        os.write(fd, text.encode())
        if os.geteuid() == 0:
            os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
    return path


def remove_secrets_file(deploy_id: str, attempt: int, root: Path = SECRETS_ROOT) -> None:
    """Remove what `write_secrets_file` made (once the container has exited or been removed)."""
    shutil.rmtree(secrets_dir(deploy_id, attempt, root), ignore_errors=True)
