"""The compose stack end to end: a signed hook deploy of the example app goes live through the
dispatcher container (process launcher), its PostgreSQL store and the sandbox; the deployment
and its events survive `docker-compose restart dispatcher`, after which a redeploy goes live.
A deploy whose dispatcher is killed mid-way (`restart -t 0`: its runner, a process of the same
container, dies with it) ends `failed` (lost) and a retry of it goes live. Neither the hook
secret nor the database password reaches any container's log or `docker inspect`."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dispatcher.client import Client
from tests.compose.conftest import SERVICES, Stack

pytestmark = pytest.mark.docker

APP = "hello-app"  # examples/hello-app, the builds volume's /builds/hello-app


def follow(client: Client, deployment_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The deployment's events to its end, then the deployment."""
    events = list(client.events(deployment_id, follow=True))
    return client.get(deployment_id), events


def restart(stack: Stack, *flags: str) -> None:
    started = stack.state("dispatcher")["StartedAt"]
    stack.compose("restart", *flags, "dispatcher")
    stack.wait_healthy()
    assert stack.state("dispatcher")["StartedAt"] != started  # a new dispatcher process


def test_no_container_configuration_holds_a_secret(stack: Stack) -> None:
    """compose.yaml hands the secrets in as files: `docker inspect` (environment, command,
    labels, mounts) shows where they are, never what they are."""
    for service in SERVICES:
        inspected = stack.inspect(service)
        assert stack.hook_secret not in inspected, f"{service}: the hook secret"
        assert stack.postgres_password not in inspected, f"{service}: the PostgreSQL password"
        assert "/run/secrets/" in inspected, f"{service}: no secret mounted"


def test_deploy_goes_live_and_survives_a_dispatcher_restart(stack: Stack) -> None:
    client = stack.client()
    first, events = follow(client, client.submit(APP, APP, APP)["id"])
    assert first["status"] == "live", (first, events[-5:], stack.compose("logs", "dispatcher"))
    assert first["urls"]["app"], first
    assert any(e.get("type") == "result" for e in events), events[-5:]

    restart(stack)
    client = stack.client()
    again = client.get(first["id"])  # from the PostgreSQL store, not the process's memory
    assert again["status"] == "live", again
    assert again["urls"] == first["urls"]
    kept = list(client.events(first["id"], follow=False))
    assert [e.get("type") for e in kept] == [e.get("type") for e in events]

    second, second_events = follow(client, client.submit(APP, APP, APP)["id"])
    assert second["id"] != first["id"]
    assert second["status"] == "live", (second, second_events[-5:])
    assert second["urls"]["app"] == first["urls"]["app"]  # the same app, redeployed

    logs = stack.compose("logs", "--no-color")
    assert stack.hook_secret not in logs
    assert stack.postgres_password not in logs


def test_a_deploy_cut_by_a_killed_dispatcher_is_retried_to_live(stack: Stack) -> None:
    # The runner's first look at the repo is held 120 s by the sandbox: once the sandbox has
    # taken that call, the runner is surely mid-way when its dispatcher is killed.
    hold = {"service": "github", "method": "GET", "path": f"/repos/[^/]+/{APP}$"}
    stack.sandbox_admin("PUT", "faults", [{**hold, "action": "delay", "delay_s": 120, "times": 1}])
    client = stack.client()
    created = client.submit(APP, APP, APP)
    deadline = time.monotonic() + 120
    while stack.sandbox_admin("GET", "faults")[0]["hits"] == 0:
        assert time.monotonic() < deadline, "the runner never asked for its repo"
        time.sleep(0.5)
    assert client.get(created["id"])["status"] == "running"
    restart(stack, "--timeout", "0")  # SIGKILL: the runner process goes with the container
    stack.sandbox_admin("PUT", "faults", [])

    client = stack.client()
    cut, _ = follow(client, created["id"])
    assert cut["status"] == "failed", cut
    assert "lost" in (cut["error"] or ""), cut

    client.action(created["id"], "retry")
    retried, events = follow(client, created["id"])
    assert retried["status"] == "live", (retried, events[-5:])
    assert retried["urls"]["app"], retried
