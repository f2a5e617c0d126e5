"""What the launchers' specs share, as pure functions: the runner's command line, the labels
that mark a runner as ours, the secrets file's format, the refusal of any secret value outside
that file, and the lines of a byte stream.

- `runner_command(spec, build_dir, resume)`: the `forge-runner` arguments. `--build-dir` is
  added for the commands that take one (`deploy`, `plan`; `teardown` has none), `--resume` for a
  `deploy` handed earlier attempts' events.
- `format_env_file(values)`: the `KEY='value'` lines a runner reads its secrets from
  (`FORGE_ENV_FILE`), never an environment, an argv or a label: `refuse_secret_values` checks a
  finished spec for every secret value, `check_plain_env` refuses a secret-looking name in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from dispatcher.core.ports import RunSpec
from dispatcher.core.secrets import is_secret_name

# The runner image (images/runner/Dockerfile): its user, and where a runner sees its build, works
# and keeps its CLIs' config. A container and a Kubernetes pod alike.
RUNNER_UID = 10001
RUNNER_GID = 10001
BUILD_MOUNT = "/build"
WORK_DIR = "/work"
HOME_DIR = "/home/forge"

LABEL_DEPLOY_ID = "forge.deploy_id"  # the deployment's id (a name users filter by)
LABEL_ATTEMPT = "forge.attempt"
LABEL_MANAGED = "forge.managed"  # "true" on every runner a launcher made

# Commands of forge-runner that read a build directory, and the one that resumes.
_BUILD_DIR_COMMANDS = frozenset({"deploy", "plan"})
_RESUME_COMMANDS = frozenset({"deploy"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def check_plain_env(env: Mapping[str, str]) -> None:
    for key in env:
        if is_secret_name(key):
            raise ValueError(
                f"{key} looks like a secret: put it in RunSpec.secrets, not RunSpec.env"
            )


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
