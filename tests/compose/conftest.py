"""The compose stack (compose.yaml) for the tests, through pytest-docker: the images built as
`make image` builds them, then `docker-compose up -d` with a fresh hook secret and PostgreSQL
password (files, from scripts/compose-secrets), the dispatcher's port on a free loopback port,
and `docker-compose down -v` at the end (containers, network and volumes gone, also when `up`
fails).

A Docker engine and Debian's `docker-compose` are required: a missing one fails the fixture
(never a skip). pytest-docker's default setup (`up --build --wait`) needs Compose v2; Debian's
1.29 has no `--wait`, so `stack` runs `up -d` and waits for the healthchecks itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_docker.plugin import Services

from dispatcher.client import Client
from tests.support.clis import REPO

SERVICES = ("postgres", "sandbox", "dispatcher")
READY_TIMEOUT_S = 300.0

# Run inside the sandbox container (its admin API answers on that network namespace's loopback
# only): METHOD PATH, the JSON body on stdin; prints the answer. Token and CA from its state.
ADMIN_CALL = """
import json, ssl, sys, urllib.request
state = "/var/lib/forge-sandbox"
with open(state + "/sandbox.json") as fh:
    ident = json.load(fh)
body = sys.stdin.read().encode() or None
request = urllib.request.Request(
    f"https://127.0.0.1:{ident['ports']['apps']}/_admin/{sys.argv[2]}", data=body,
    method=sys.argv[1], headers={"Authorization": "Bearer " + ident["admin_token"],
                                 "Content-Type": "application/json"})
context = ssl.create_default_context(cafile=state + "/tls/ca.pem")
with urllib.request.urlopen(request, context=context, timeout=30) as response:
    print(response.read().decode())
"""


@dataclass(frozen=True)
class Stack:
    """A running stack: how to run docker-compose on it and where its dispatcher answers."""

    command: list[str]
    url: str
    hook_secret: str
    postgres_password: str

    def compose(self, *args: str) -> str:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def sandbox_admin(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the sandbox's admin API (faults, time scale, resources), from inside it."""
        result = subprocess.run(
            [*self.command, "exec", "-T", "sandbox", "python", "-c", ADMIN_CALL, method, path],
            input="" if body is None else json.dumps(body),
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"sandbox admin {method} {path}:\n{result.stderr}"
        return json.loads(result.stdout)

    def client(self) -> Client:
        return Client(self.url, self.hook_secret.encode())

    def state(self, service: str) -> dict[str, Any]:
        """The service's container state (`docker inspect`), {} when it has none."""
        container = self.compose("ps", "-q", service).strip()
        if not container:
            return {}
        inspected = subprocess.run(
            ["docker", "inspect", "-f", "{{json .State}}", container],
            capture_output=True,
            text=True,
            check=True,
        )
        state: dict[str, Any] = json.loads(inspected.stdout)
        return state

    def inspect(self, service: str) -> str:
        """The service's whole `docker inspect` (configuration, environment, mounts, state)."""
        container = self.compose("ps", "-q", service).strip()
        assert container, f"{service} has no container"
        return subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        ).stdout

    def health(self, service: str) -> str:
        state = self.state(service)
        if not state:
            return "missing"
        if state.get("Status") != "running":
            return str(state.get("Status"))
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_healthy(self) -> None:
        """Every service running and healthy (the healthchecks of compose.yaml)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {service: self.health(service) for service in SERVICES}
            if all(state == "healthy" for state in states.values()):
                return
            bad = [
                s
                for s, state in states.items()
                if state in ("exited", "dead", "missing", "restarting")
            ]
            if bad:
                break
            time.sleep(1)
        raise AssertionError(
            f"the stack is not healthy: {states}\n{self.compose('logs', '--no-color')[-6000:]}"
        )


def _first_line(path: Path) -> str:
    return path.read_text().splitlines()[0]


def _required(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is not installed: scripts/bootstrap installs it (compose tests need it)"
    return path


@pytest.fixture(scope="session")
def stack_images(test_root: Path) -> None:
    """`make image`: the runner, the dispatcher on it and PostgreSQL, from the layer cache."""
    engine = subprocess.run(
        [str(REPO / "scripts" / "docker-engine")], capture_output=True, text=True, check=False
    )
    assert engine.returncode == 0, f"no Docker engine: {engine.stderr[-3000:]}"
    log = test_root / "compose-image-build.log"
    with log.open("w") as out:
        result = subprocess.run(
            ["make", "-C", str(REPO), "image"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FORGE_BUILD_PROGRESS": "plain"},
            check=False,
        )
    tail = log.read_text(errors="replace")[-5000:]
    assert result.returncode == 0, f"make image failed ({log}):\n{tail}"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return _required("docker-compose")


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO / "compose.yaml")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Nothing: pytest-docker runs its setup before the block whose end runs `down -v`, so a
    failed `up` there would leave the stack behind. The `stack` fixture runs `up -d` instead."""
    return []


@pytest.fixture(scope="session")
def stack_environment(test_root: Path) -> Iterator[dict[str, str]]:
    """What compose.yaml reads, for docker-compose (pytest-docker runs it with os.environ): the
    secrets' folder, fresh from scripts/compose-secrets, and a free dispatcher port."""
    folder = test_root / "compose-secrets"
    shutil.rmtree(folder, ignore_errors=True)
    made = subprocess.run(
        [str(REPO / "scripts" / "compose-secrets")],
        env={**os.environ, "FORGE_SECRETS_DIR": str(folder)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, f"scripts/compose-secrets:\n{made.stderr}"
    values = {
        "FORGE_SECRETS_DIR": str(folder),
        "FORGE_DISPATCHER_PORT": "",  # a free port on 127.0.0.1
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def stack(
    stack_images: None,
    stack_environment: dict[str, str],
    docker_compose_command: str,
    docker_compose_file: str,
    docker_compose_project_name: str,
    docker_services: Services,
) -> Stack:
    """`docker-compose up -d` once the images exist and the environment is set, inside
    pytest-docker's block (its `down -v` runs even when `up` fails)."""
    command = [docker_compose_command, "-f", docker_compose_file, "-p", docker_compose_project_name]
    up = subprocess.run([*command, "up", "-d"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, f"docker-compose up -d:\n{up.stderr[-5000:]}"
    port = docker_services.port_for("sandbox", 8080)  # the dispatcher shares its network
    running = Stack(
        command=command,
        url=f"http://127.0.0.1:{port}",
        hook_secret=_first_line(Path(stack_environment["FORGE_SECRETS_DIR"]) / "hook_secret"),
        postgres_password=_first_line(
            Path(stack_environment["FORGE_SECRETS_DIR"]) / "postgres_password"
        ),
    )
    running.wait_healthy()
    assert requests.get(f"{running.url}/healthz", timeout=10).ok
    return running
