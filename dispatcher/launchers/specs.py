"""What each launcher starts for one `RunSpec`, as data: pure functions, unit-tested without I/O.

- `runner_command(spec, build_dir, resume)`: the `forge-runner` arguments. `--build-dir` is
  added for the commands that take one (`deploy`, `plan`; `teardown` has none), `--resume` for a
  `deploy` handed earlier attempts' events.
- `docker_container_spec(...)`: the Docker SDK `containers.create` kwargs, built by
  `dispatcher.container.runner_container_spec` (the hardened container of the image issue) plus
  the `forge.managed=true` label every launcher-made container carries and, when resuming, the
  earlier events mounted read-only at `RESUME_MOUNT`.
- `process_plan(...)`: the argv, environment and files of a local `forge-runner` process run
  under `dispatcher/launchers/_wrap.py` (which keeps its exit status on disk).

Secrets travel in a file in both cases (`FORGE_ENV_FILE`), never in an environment, an argv or
a label: `refuse_secret_values` checks the finished spec for every secret value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.container import (
    BUILD_MOUNT,
    LABEL_ATTEMPT,
    LABEL_DEPLOY_ID,
    SECRETS_ROOT,
    Limits,
    container_name,
    is_secret_name,
    runner_container_spec,
    secrets_dir,
)
from dispatcher.launchers.base import RunSpec

LABEL_MANAGED = "forge.managed"  # "true" on every runner container a launcher made
MANAGED_FILTER = f"{LABEL_MANAGED}=true"
RESUME_MOUNT = "/run/forge/resume.jsonl"  # in the container, beside the secrets file
RESUME_FILE = "resume.jsonl"  # beside secrets.env in the attempt's host folder
EVENTS_COPY_MOUNT = "/run/forge/events.jsonl"  # the runner's copy of its events (FORGE_EVENTS_COPY)
EVENTS_COPY_FILE = "events.jsonl"  # beside secrets.env; read back after an engine outage

# Commands of forge-runner that read a build directory, and the one that resumes.
_BUILD_DIR_COMMANDS = frozenset({"deploy", "plan"})
_RESUME_COMMANDS = frozenset({"deploy"})

# What a local runner process inherits from the dispatcher: nothing else (no token can leak in).
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")
WRAPPER = Path(__file__).with_name("_wrap.py")


def runner_command(spec: RunSpec, build_dir: str, resume: str | None) -> list[str]:
    """`spec.args` plus `--build-dir <build_dir>` (deploy, plan) and `--resume <resume>`
    (deploy, when `resume` is given). Raises ValueError naming what is wrong."""
    if not spec.args:
        raise ValueError("RunSpec.args is empty: expected a forge-runner command, e.g. deploy")
    command, options = spec.args[0], list(spec.args[1:])
    for flag in ("--build-dir", "--resume"):
        if any(a == flag or a.startswith(flag + "=") for a in options):
            raise ValueError(f"RunSpec.args must not carry {flag}: the launcher sets it")
    if command in _BUILD_DIR_COMMANDS:
        options += ["--build-dir", build_dir]
    if resume is not None:
        if command not in _RESUME_COMMANDS:
            raise ValueError(f"resume_events given for {command!r}: only deploy resumes")
        options += ["--resume", resume]
    return [command, *options]


def _strings(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, Mapping):
        for key, value in content.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(content, list | tuple | set | frozenset):
        for item in content:
            yield from _strings(item)
    elif content is not None:
        yield str(content)


def refuse_secret_values(secrets: Mapping[str, str], places: Mapping[str, Any]) -> None:
    """Raise ValueError when a secret value shows in any of `places` (argv, env, labels...)."""
    for place, content in places.items():
        texts = list(_strings(content))
        for key, value in secrets.items():
            if value and any(value in text for text in texts):
                raise ValueError(f"the value of {key} shows in the {place}: secrets go in a file")


def _check_plain_env(env: Mapping[str, str]) -> None:
    for key in env:
        if is_secret_name(key):
            raise ValueError(
                f"{key} looks like a secret: put it in RunSpec.secrets, not RunSpec.env"
            )


# ---- Docker ------------------------------------------------------------------------------------


def docker_secrets_file(spec: RunSpec, root: Path = SECRETS_ROOT) -> Path:
    """Where `container.write_secrets_file` puts this attempt's secrets."""
    return secrets_dir(spec.deployment_id, spec.attempt, root) / "secrets.env"


def docker_resume_file(spec: RunSpec, root: Path = SECRETS_ROOT) -> Path:
    """The host file holding `spec.resume_events` (non-secret), in the attempt's folder."""
    return secrets_dir(spec.deployment_id, spec.attempt, root) / RESUME_FILE


def docker_events_copy_file(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    """The host file the runner appends a copy of its events to, in the attempt's folder."""
    return secrets_dir(deployment_id, attempt, root) / EVENTS_COPY_FILE


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
    the resume mount when `spec.resume_events` is set. The host files are
    `docker_secrets_file(spec, files_root)`, `docker_events_copy_file(...)` and
    `docker_resume_file(...)`."""
    _check_plain_env(spec.env)
    resume = spec.resume_events is not None
    command = runner_command(spec, BUILD_MOUNT, RESUME_MOUNT if resume else None)
    kwargs = runner_container_spec(
        image,
        spec.deployment_id,
        spec.attempt,
        Path(spec.build_dir),
        docker_secrets_file(spec, files_root),
        command,
        env={**spec.env, "FORGE_EVENTS_COPY": EVENTS_COPY_MOUNT},
        read_only_files=read_only_files,
        network=network,
        limits=limits,
    )
    kwargs["labels"] = {**kwargs["labels"], LABEL_MANAGED: "true"}
    copy = docker_events_copy_file(spec.deployment_id, spec.attempt, files_root)
    kwargs["mounts"] = [
        *kwargs["mounts"],
        {"Type": "bind", "Source": str(copy), "Target": EVENTS_COPY_MOUNT, "ReadOnly": False},
    ]
    if resume:
        source = docker_resume_file(spec, files_root)
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


def handle_fields(labels: Mapping[str, str]) -> tuple[str, int] | None:
    """(deployment id, attempt) from a container's labels; None when they are not ours."""
    deploy_id, attempt = labels.get(LABEL_DEPLOY_ID), labels.get(LABEL_ATTEMPT)
    if labels.get(LABEL_MANAGED) != "true" or not deploy_id or not attempt:
        return None
    try:
        number = int(attempt)
        container_name(deploy_id, number)  # validates both
    except ValueError:
        return None
    return deploy_id, number


# ---- local processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessPlan:
    """One runner process: the wrapper's argv (runner argv inside), its environment and files.
    Every path is inside `attempt_dir`, which `remove` deletes."""

    argv: tuple[str, ...]
    env: dict[str, str]
    attempt_dir: Path
    cwd: Path
    home: Path
    tmp: Path
    stdout: Path
    stderr: Path
    secrets_file: Path
    resume_file: Path | None


def default_base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a runner process keeps of the dispatcher's environment: `INHERITED` only, with
    the Python interpreter's folder first on PATH (where `forge-runner` was installed)."""
    environ = os.environ if environ is None else environ
    base = {k: environ[k] for k in INHERITED if environ.get(k)}
    here = str(Path(sys.executable).parent)
    parts = [p for p in base.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p]
    base["PATH"] = os.pathsep.join([here, *(p for p in parts if p != here)])
    return base


def attempt_dir(workdir: Path, spec: RunSpec) -> Path:
    return workdir / container_name(spec.deployment_id, spec.attempt)


def process_plan(
    spec: RunSpec,
    workdir: Path,
    runner_argv: Sequence[str],
    base_env: Mapping[str, str],
    *,
    python: str = sys.executable,
    wrapper: Path = WRAPPER,
) -> ProcessPlan:
    """The local process of one attempt. `runner_argv` starts forge-runner (e.g.
    `python -m runner.cli`); the wrapper (`python -I -S _wrap.py <attempt dir> -- ...`) runs it
    in its own process group and writes its exit status to `exit.json`. Environment: `base_env`
    (see `default_base_env`), then `spec.env`, then HOME and TMPDIR in the attempt folder,
    `FORGE_DEPLOY_ID` and `FORGE_ENV_FILE` (the 0600 secrets file). No secret value anywhere."""
    if not workdir.is_absolute():
        raise ValueError(f"workdir must be an absolute path, got {str(workdir)!r}")
    if not Path(spec.build_dir).is_absolute():
        raise ValueError(f"build_dir must be an absolute path, got {str(spec.build_dir)!r}")
    if not runner_argv:
        raise ValueError("runner_argv is empty: expected e.g. python -m runner.cli")
    _check_plain_env(spec.env)
    for key in list(base_env) + list(spec.env):
        if is_secret_name(key):
            raise ValueError(f"{key} looks like a secret: it never goes in a runner's environment")
    folder = attempt_dir(workdir, spec)
    secrets_file = folder / "secrets.env"
    resume_file = folder / RESUME_FILE if spec.resume_events is not None else None
    home, tmp = folder / "home", folder / "tmp"
    fixed = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "FORGE_DEPLOY_ID": spec.deployment_id,
        "FORGE_ENV_FILE": str(secrets_file),
    }
    for key in ("FORGE_DEPLOY_ID", "FORGE_ENV_FILE"):
        if key in spec.env and spec.env[key] != fixed[key]:
            raise ValueError(
                f"{key} is set by the launcher to {fixed[key]!r}, got {spec.env[key]!r}"
            )
    env = {**base_env, **spec.env, **fixed}
    command = runner_command(
        spec, str(spec.build_dir), str(resume_file) if resume_file is not None else None
    )
    argv = (python, "-I", "-S", str(wrapper), str(folder), "--", *runner_argv, *command)
    refuse_secret_values(spec.secrets, {"argv": argv, "environment": env})
    return ProcessPlan(
        argv=argv,
        env=env,
        attempt_dir=folder,
        cwd=tmp,
        home=home,
        tmp=tmp,
        stdout=folder / "stdout.jsonl",
        stderr=folder / "stderr.log",
        secrets_file=secrets_file,
        resume_file=resume_file,
    )


def split_lines(chunks: Iterable[bytes]) -> Iterable[str]:
    """Complete lines (without their newline) of a byte stream cut anywhere; a last line
    without a newline is yielded at the end. Invalid UTF-8 is replaced, never raised."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")
