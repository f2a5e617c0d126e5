"""The runner image, built once per session exactly as `make image` builds it, and a Docker client.

A Docker engine is required: scripts/test brings one up (scripts/docker-engine) before pytest;
if none answers here the fixture fails (never skips). Every container a test makes is removed at
the end of that test, and every secrets folder it wrote under /dev/shm too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from dispatcher.launchers.docker import files as spec_mod
from tests.support.clis import REPO

IMAGE = "forge-runner:dev"
DOCKER = "/usr/bin/docker"  # Debian's client, the engine's own version (see scripts/docker-engine)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    engine = subprocess.run(
        [str(REPO / "scripts" / "docker-engine")], capture_output=True, text=True, check=False
    )
    assert engine.returncode == 0, f"no Docker engine: {engine.stderr[-3000:]}"
    client = docker.from_env(version="auto")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def runner_image(docker_client: Any, test_root: Path) -> str:
    """`make image`'s build (images/runner/build), reusing the layer cache; the image's tag."""
    log = test_root / "image-build.log"
    start = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            [str(REPO / "images" / "runner" / "build"), IMAGE],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FORGE_BUILD_PROGRESS": "plain"},
            cwd=REPO,
            check=False,
        )
        out.write(f"\nimage build (test fixture): {time.monotonic() - start:.1f} s\n")
    tail = log.read_text(errors="replace")[-5000:]
    assert result.returncode == 0, f"image build failed ({log}):\n{tail}"
    return IMAGE


class Containers:
    """Names of the containers and secrets folders a test made; all removed at its end."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.names: list[str] = []
        self.secrets: list[tuple[str, int]] = []

    def new_deploy_id(self, prefix: str = "img") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def write_secrets(self, values: dict[str, str], deploy_id: str, attempt: int) -> Path:
        self.secrets.append((deploy_id, attempt))
        return spec_mod.write_secrets_file(values, deploy_id, attempt)

    def track(self, name: str) -> None:
        self.names.append(name)

    def cleanup(self) -> None:
        for name in self.names:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.containers.get(name).remove(force=True)
        for deploy_id, attempt in self.secrets:
            spec_mod.remove_secrets_file(deploy_id, attempt)


@pytest.fixture
def containers(docker_client: Any) -> Iterator[Containers]:
    made = Containers(docker_client)
    try:
        yield made
    finally:
        made.cleanup()
