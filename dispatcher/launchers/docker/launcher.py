"""The Docker launcher: one hardened container per deploy attempt, through the Docker SDK.

The container is `spec.docker_container_spec` (non-root, read-only root filesystem, no
capabilities, limits, build dir read-only at /build, tokens in a mounted file), named
`forge-deploy-<id>-<attempt>` and labelled with the deployment id, the attempt and
`forge.managed=true`. Launching is idempotent: a container of that name is adopted (and started
if it was only created), and a `409 Conflict` on create means another call made it first, which
is success too. The engine keeps the container's logs until `remove`, so a restarted dispatcher
streams an attempt from its first event (`running()` finds it by label). The attempt's host
files (secrets, the runner's events copy, resume) are `files`'.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import requests
import urllib3

from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec, attempt_name
from dispatcher.launchers.common import split_lines
from dispatcher.launchers.docker.files import (
    SECRETS_ROOT,
    read_events_copy,
    remove_secrets_file,
    write_events_copy,
    write_resume_file,
    write_secrets_file,
)
from dispatcher.launchers.docker.spec import (
    MANAGED_FILTER,
    Limits,
    docker_container_spec,
    docker_run_command,
    handle_fields,
)

_STOP_WAIT_S = 30.0  # after SIGKILL, how long the engine may take to report the container gone

# One launch at a time per attempt within this process (several launcher instances may share
# a client): the secrets file is rewritten by a launch; across processes the 409 decides.
_GUARD = threading.Lock()
_LAUNCHING: dict[str, threading.Lock] = {}


def _launch_lock(name: str) -> threading.Lock:
    with _GUARD:
        return _LAUNCHING.setdefault(name, threading.Lock())


class DockerLauncher(Launcher):
    name = "docker"
    backend = "Docker engine"

    def __init__(
        self,
        client: Any,  # docker.DockerClient
        image: str,
        network_mode: str = "bridge",
        *,
        read_only_files: Sequence[str | Path] = (),
        limits: Limits | None = None,
        files_root: Path = SECRETS_ROOT,
    ) -> None:
        self.client = client
        self.image = image
        self.network_mode = network_mode
        self.read_only_files = tuple(read_only_files)
        self.limits = limits
        self.files_root = files_root

    def container_spec(self, spec: RunSpec) -> dict[str, Any]:
        """The `containers.create` kwargs of this attempt (pure; see `specs`)."""
        return docker_container_spec(
            spec,
            self.image,
            files_root=self.files_root,
            network=self.network_mode,
            read_only_files=self.read_only_files,
            limits=self.limits,
        )

    def reproduce_command(self, spec: RunSpec) -> str | None:
        """The `docker run` line that starts the same container (the secrets file's path, never
        its content; the file exists while the attempt has not been removed)."""
        return docker_run_command(self.container_spec(spec))

    # ---- Launcher --------------------------------------------------------------------------

    def unavailable(self, error: BaseException) -> str | None:
        """The engine's socket refused or dropped (a restart, a crash): docker-py raises
        requests' ConnectionError, and a log stream cut mid-read urllib3's ProtocolError."""
        cut = requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
        if isinstance(error, cut | urllib3.exceptions.HTTPError):
            return f"no answer on its socket ({_first_line(error)})"
        if isinstance(error, docker.errors.APIError) and error.status_code in (502, 503, 504):
            return f"it answers {error.status_code} ({_first_line(error)})"
        return None

    def launch(self, spec: RunSpec) -> Handle:
        kwargs = self.container_spec(spec)
        name = kwargs["name"]
        with _launch_lock(name):
            box = self._find(name)
            if box is None:
                box = self._create(spec, kwargs)
            if box.status == "created":  # made by a call that died before starting it
                box.start()
        return Handle(self.name, spec.deployment_id, spec.attempt, box.id)

    def _create(self, spec: RunSpec, kwargs: dict[str, Any]) -> Any:
        write_secrets_file(spec.secrets, spec.deployment_id, spec.attempt, root=self.files_root)
        write_events_copy(spec.deployment_id, spec.attempt, self.files_root)
        if spec.resume_events is not None:
            write_resume_file(spec.resume_events, spec.deployment_id, spec.attempt, self.files_root)
        try:
            return self.client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as e:
            raise RuntimeError(
                f"the runner image {self.image} is missing: build it with `make image`"
            ) from e
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
        found = self._find(kwargs["name"])  # 409: another call created it first
        if found is None:
            raise RuntimeError(f"{kwargs['name']}: create said 409 Conflict, yet it is not found")
        return found

    def _find(self, name_or_id: str) -> Any | None:
        try:
            return self.client.containers.get(name_or_id)
        except docker.errors.NotFound:
            return None

    def _container(self, handle: Handle) -> Any | None:
        return self._find(handle.ref or attempt_name(handle.deployment_id, handle.attempt))

    def stream(self, handle: Handle) -> Iterator[str]:
        box = self._container(handle)
        if box is None:
            return
        chunks = box.logs(stream=True, follow=True, stdout=True, stderr=False)
        try:
            yield from split_lines(chunks)
        finally:
            chunks.close()

    def recorded(self, handle: Handle) -> list[str]:
        """The complete lines of the runner's events copy (`files.read_events_copy`)."""
        return read_events_copy(handle.deployment_id, handle.attempt, self.files_root)

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        box = self._container(handle)
        if box is None:
            return Exit(None, "lost")
        started = time.monotonic()
        try:
            result = box.wait(timeout=timeout_s)
        except docker.errors.NotFound:
            return Exit(None, "lost")
        except requests.exceptions.ReadTimeout as e:
            raise TimeoutError(f"{box.name} still runs after {timeout_s} s") from e
        except requests.exceptions.ConnectionError as e:
            # docker-py over a unix socket reports a read timeout as a ConnectionError
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                raise TimeoutError(f"{box.name} still runs after {timeout_s} s") from e
            raise
        code = result.get("StatusCode")
        code = code if isinstance(code, int) and code >= 0 else None
        try:
            box.reload()
            oom = bool(box.attrs.get("State", {}).get("OOMKilled"))
        except docker.errors.NotFound:
            oom = False
        if oom:
            return Exit(code, "oom-killed")
        if code is not None and code > 128:
            return Exit(code, "killed")
        return Exit(code)

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        box = self._container(handle)
        if box is None or lines <= 0:
            return ""
        try:
            data: bytes = box.logs(stdout=False, stderr=True, tail=lines)
        except docker.errors.NotFound:  # removed between the lookup and the read
            return ""
        return data.decode("utf-8", errors="replace").rstrip("\n")

    def terminate(self, handle: Handle, grace_s: float) -> None:
        box = self._container(handle)
        if box is None:
            return
        try:
            box.stop(timeout=max(0, math.ceil(grace_s)))  # SIGTERM, grace, SIGKILL
            box.wait(timeout=_STOP_WAIT_S)
        except docker.errors.NotFound:
            return

    def remove(self, handle: Handle) -> None:
        box = self._container(handle)
        if box is not None:
            try:
                box.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: a removal is already in progress
                    raise
        remove_secrets_file(handle.deployment_id, handle.attempt, self.files_root)

    def running(self) -> list[Handle]:
        found = []
        for box in self.client.containers.list(all=True, filters={"label": MANAGED_FILTER}):
            fields = handle_fields(box.labels)
            if fields is not None:
                found.append(Handle(self.name, fields[0], fields[1], box.id))
        return sorted(found, key=lambda h: (h.deployment_id, h.attempt))

    def health(self) -> str | None:
        try:
            self.client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            return f"the Docker engine does not answer: {e}"
        try:
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound:
            return f"the runner image {self.image} is missing: build it with `make image`"
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            return f"the Docker engine cannot inspect {self.image}: {e}"
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
