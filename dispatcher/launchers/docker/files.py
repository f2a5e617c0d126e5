"""An attempt's host files, in `<root>/forge-deploy-<id>-<attempt>/` (a tmpfs, `/dev/shm`, by
default: nothing here reaches a disk). The container mounts them; `remove_secrets_file`
deletes the folder once the container is gone.

    secrets.env    the tokens, 0400 owned by the container's uid, mounted read-only
    events.jsonl   the runner's copy of its (masked) events, 0600 owned by the container's uid,
                   mounted writable: read back after an engine outage (`DockerLauncher.recorded`)
    resume.jsonl   earlier attempts' (masked, non-secret) events when resuming, 0444, read-only

Why the copy: the engine reads a container's output in chunks and writes it to the log line by
line; an engine killed between the two loses the rest of that chunk (one line in the middle of
a deploy, or its last lines). The copy is on the host, untouched by the engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from dispatcher.core.ports import attempt_name
from dispatcher.launchers.common import RUNNER_GID, RUNNER_UID, format_env_file

# A tmpfs on the host: the file never reaches a disk. Its folder is checked to be ours.
SECRETS_ROOT = Path("/dev/shm")  # noqa: S108
RESUME_MOUNT = "/run/forge/resume.jsonl"  # in the container, beside the secrets file
EVENTS_COPY_MOUNT = "/run/forge/events.jsonl"  # the runner's copy (FORGE_EVENTS_COPY)


def attempt_folder(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    return root / attempt_name(deployment_id, attempt)


def secrets_file(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    """Where `write_secrets_file` puts the attempt's secrets."""
    return attempt_folder(deployment_id, attempt, root) / "secrets.env"


def resume_file(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    """The host file holding the attempt's resume events (non-secret)."""
    return attempt_folder(deployment_id, attempt, root) / "resume.jsonl"


def events_copy_file(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> Path:
    """The host file the runner appends a copy of its events to."""
    return attempt_folder(deployment_id, attempt, root) / "events.jsonl"


def write_secrets_file(
    values: Mapping[str, str],
    deployment_id: str,
    attempt: int,
    *,
    root: Path = SECRETS_ROOT,
    uid: int = RUNNER_UID,
    gid: int = RUNNER_GID,
) -> Path:
    """Write `values` to the attempt's `secrets.env`: the folder 0700 (its owner: whoever runs
    the dispatcher), the file 0400 owned by the container's uid. Returns the file's path, for
    `spec.runner_container_spec(secrets_file=...)`. Run as root (or as `uid` itself):
    otherwise the file stays the caller's and the container cannot read it."""
    text = format_env_file(values)
    folder = attempt_folder(deployment_id, attempt, root)
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


def write_events_copy(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> None:
    """The attempt's events copy, empty, writable by the container's user only (non-secret:
    the runner masks every line; a new container of the attempt starts its seq again)."""
    fd = os.open(
        events_copy_file(deployment_id, attempt, root), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
    )
    try:
        if os.geteuid() == 0:
            os.fchown(fd, RUNNER_UID, RUNNER_GID)
    finally:
        os.close(fd)


def write_resume_file(
    events: str, deployment_id: str, attempt: int, root: Path = SECRETS_ROOT
) -> None:
    """The earlier attempts' events (masked, non-secret), readable by the container's user."""
    path = resume_file(deployment_id, attempt, root)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        os.write(fd, events.encode())
    finally:
        os.close(fd)


def read_events_copy(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> list[str]:
    """The complete lines of the attempt's events copy (a last line still being written is
    left for the next read); none when it is gone."""
    try:
        data = events_copy_file(deployment_id, attempt, root).read_bytes()
    except FileNotFoundError:
        return []
    complete = data[: data.rfind(b"\n") + 1]
    return complete.decode("utf-8", errors="replace").splitlines()


def remove_secrets_file(deployment_id: str, attempt: int, root: Path = SECRETS_ROOT) -> None:
    """Remove the attempt's folder (once its container has exited or been removed)."""
    shutil.rmtree(attempt_folder(deployment_id, attempt, root), ignore_errors=True)
