"""The compose stack end to end: a signed hook deploy of the example app goes live through the
dispatcher container (process launcher), its PostgreSQL store and the sandbox; the deployment
survives `docker-compose restart dispatcher`, after which a redeploy goes live too. Neither the
hook secret nor the database password reaches any container's log."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.client import Client
from tests.compose.conftest import Stack

pytestmark = pytest.mark.docker

APP = "hello-app"  # examples/hello-app, the builds volume's /builds/hello-app


def deploy(client: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submit the example app through the signed hook, follow its events to the end."""
    created = client.submit(APP, APP, APP)
    events = list(client.events(created["id"], follow=True))
    return client.get(created["id"]), events


def test_deploy_goes_live_and_survives_a_dispatcher_restart(stack: Stack) -> None:
    first, events = deploy(stack.client())
    assert first["status"] == "live", (first, events[-5:], stack.compose("logs", "dispatcher"))
    assert first["urls"]["app"], first
    assert any(e.get("type") == "result" for e in events), events[-5:]

    started = stack.state("dispatcher")["StartedAt"]
    stack.compose("restart", "dispatcher")
    stack.wait_healthy()
    assert stack.state("dispatcher")["StartedAt"] != started  # a new dispatcher process

    client = stack.client()
    again = client.get(first["id"])  # from the PostgreSQL store, not the process's memory
    assert again["status"] == "live", again
    assert again["urls"] == first["urls"]
    kept = list(client.events(first["id"], follow=False))
    assert [e.get("type") for e in kept] == [e.get("type") for e in events]

    second, second_events = deploy(client)
    assert second["id"] != first["id"]
    assert second["status"] == "live", (second, second_events[-5:])
    assert second["urls"]["app"] == first["urls"]["app"]  # the same app, redeployed

    logs = stack.compose("logs", "--no-color")
    assert stack.hook_secret not in logs
    assert stack.postgres_password not in logs
