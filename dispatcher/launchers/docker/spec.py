"""The hardened container of one deploy attempt, as data: Docker SDK kwargs and the equivalent
`docker run`. Pure: the files the container mounts are made by `files`, the container by
`launcher`.

`runner_container_spec(...)` returns the keyword arguments of the Docker SDK's
`containers.create(**spec)`. The container:

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
- is named `forge-deploy-<deployment id>-<attempt>` and labelled with both, so a retried
  create finds its container and a retry after a failure never collides with the failed one.

`docker_container_spec(spec, image, ...)` is that container for one `RunSpec`, as the launcher
makes it: plus the `forge.managed=true` label, the runner's events copy mounted writable and,
when resuming, the earlier events mounted read-only. `docker_run_argv(spec)` /
`docker_run_command(spec)` give the same container as one `docker run` line, which a person
runs to replay a deploy.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.core.ports import RunSpec, attempt_name, check_attempt
from dispatcher.core.secrets import is_secret_name
from dispatcher.launchers.common import (
    BUILD_MOUNT,
    HOME_DIR,
    LABEL_ATTEMPT,
    LABEL_DEPLOY_ID,
    LABEL_MANAGED,
    RUNNER_GID,
    RUNNER_UID,
    WORK_DIR,
    check_plain_env,
    refuse_secret_values,
    runner_command,
)
from dispatcher.launchers.docker.files import (
    EVENTS_COPY_MOUNT,
    RESUME_MOUNT,
    SECRETS_ROOT,
    events_copy_file,
    resume_file,
    secrets_file,
)
from runner.events import DeploymentId

SECRETS_MOUNT = "/run/forge/secrets.env"
MANAGED_FILTER = f"{LABEL_MANAGED}=true"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIZE = re.compile(r"^(\d+)([kmg]?)$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


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
    deployment_id: str,
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
    name = attempt_name(deployment_id, attempt)
    for label, path in (("build_dir", build_dir), ("secrets_file", secrets_file)):
        if not Path(path).is_absolute():
            raise ValueError(f"{label} must be an absolute host path, got {str(path)!r}")
    fixed = {"FORGE_DEPLOY_ID": deployment_id, "FORGE_ENV_FILE": SECRETS_MOUNT}
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
        "labels": {LABEL_DEPLOY_ID: deployment_id, LABEL_ATTEMPT: str(attempt)},
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


def docker_container_spec(
    spec: RunSpec,
    image: str,
    *,
    files_root: Path = SECRETS_ROOT,
    network: str = "bridge",
    read_only_files: Sequence[str | Path] = (),
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The `containers.create(**kwargs)` of one attempt: `runner_container_spec` (hardening,
    build dir read-only at /build, secrets file at /run/forge/secrets.env, name and labels
    with the attempt) + the managed label + the events copy, writable, at `EVENTS_COPY_MOUNT` +
    the resume mount when `spec.resume_events` is set. The host files are `files`'."""
    check_plain_env(spec.env)
    resume = spec.resume_events is not None
    command = runner_command(spec, BUILD_MOUNT, RESUME_MOUNT if resume else None)
    kwargs = runner_container_spec(
        image,
        spec.deployment_id,
        spec.attempt,
        Path(spec.build_dir),
        secrets_file(spec.deployment_id, spec.attempt, files_root),
        command,
        env={**spec.env, "FORGE_EVENTS_COPY": EVENTS_COPY_MOUNT},
        read_only_files=read_only_files,
        network=network,
        limits=limits,
    )
    kwargs["labels"] = {**kwargs["labels"], LABEL_MANAGED: "true"}
    copy = events_copy_file(spec.deployment_id, spec.attempt, files_root)
    kwargs["mounts"] = [
        *kwargs["mounts"],
        {"Type": "bind", "Source": str(copy), "Target": EVENTS_COPY_MOUNT, "ReadOnly": False},
    ]
    if resume:
        source = resume_file(spec.deployment_id, spec.attempt, files_root)
        kwargs["mounts"] = [
            *kwargs["mounts"],
            {"Type": "bind", "Source": str(source), "Target": RESUME_MOUNT, "ReadOnly": True},
        ]
    refuse_secret_values(
        spec.secrets,
        {
            "command": kwargs["command"],
            "environment": kwargs["environment"],
            "labels": kwargs["labels"],
            "mounts": kwargs["mounts"],
        },
    )
    return kwargs


def handle_fields(labels: Mapping[str, str]) -> tuple[DeploymentId, int] | None:
    """(deployment id, attempt) from a container's labels; None when they are not ours."""
    deployment_id, attempt = labels.get(LABEL_DEPLOY_ID), labels.get(LABEL_ATTEMPT)
    if labels.get(LABEL_MANAGED) != "true" or not deployment_id or not attempt:
        return None
    try:
        return check_attempt(deployment_id, int(attempt))
    except ValueError:
        return None
