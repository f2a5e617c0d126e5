"""The status mirror end to end, all parts real: a dispatcher (process launcher, SQLite)
deploys the example app into the sandbox while its mirror writes the dashboard's row through
supabase-py into the sandbox's dashboard project; the row is read back with supabase-py as
its owner (RLS) and the database's own history of writes (a trigger) shows the order.

- Statuses reach the row in order, versions rise, the final row equals the dispatcher's view.
- The dashboard down (503 on its REST API) for the whole deploy: the deploy still goes live,
  nothing reaches the row, and once the dashboard is back the mirror catches up.
- No secret of the sandbox, the dispatcher or the dashboard in the row.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dispatcher.mirror.rows import idempotency_key
from tests.dispatcher.conftest import (  # noqa: F401 - fixture
    RunningDispatcher,
    sandbox_secrets,
    start_dispatcher,
)
from tests.forgeboard.conftest import Dashboard
from tests.support.sandbox import SandboxProcess

pytestmark = [pytest.mark.clis, pytest.mark.postgres]
ORDER = {"queued": 0, "running": 1, "live": 2, "unhealthy": 2, "failed": 2, "cancelled": 2}


def _mirrored(dashboard: Dashboard, start: Callable[..., RunningDispatcher]) -> RunningDispatcher:
    return start(**dashboard.mirror_env())


def _queue_row(dashboard: Dashboard) -> tuple[str, str, str]:
    """(user id, user token, row id): a signed-in user's project and the row deploy.ts makes."""
    user = str(uuid.uuid4())
    token = dashboard.user_token(user)
    project = f"proj_{uuid.uuid4().hex[:10]}"
    dashboard.client(dashboard.secret_key).table("projects").insert(
        {"id": project, "owner_id": user, "name": "app", "build_dir": "app"}
    ).execute()
    row = (
        dashboard.client(user_token=token)
        .table("deployments")
        .insert({"request_id": str(uuid.uuid4()), "project_id": project})
        .execute()
        .data[0]
    )
    return user, token, row["id"]


def _read_row(dashboard: Dashboard, token: str, row_id: str) -> dict[str, Any]:
    found = (
        dashboard.client(user_token=token)
        .table("deployments")
        .select("*")
        .eq("id", row_id)
        .single()
        .execute()
    )
    data: dict[str, Any] = found.data
    return data


def _wait_row(
    dashboard: Dashboard, token: str, row_id: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    for _ in range(1200):  # a bound on reads, not a timed assertion
        current = _read_row(dashboard, token, row_id)
        if until(current):
            return current
        time.sleep(0.1)
    raise AssertionError(f"row {row_id} never got there: {current}")


def _history(dashboard: Dashboard, row_id: str) -> list[tuple[str, int]]:
    with psycopg.connect(dashboard.db_url) as conn:
        rows = conn.execute(
            "SELECT status, version FROM deployment_history WHERE deployment_id = %s ORDER BY n",
            (row_id,),
        ).fetchall()
    return [(str(s), int(v)) for s, v in rows]


def _matches(row: dict[str, Any], dep: dict[str, Any]) -> None:
    assert row["dispatcher_id"] == dep["id"]
    assert row["status"] == dep["status"] == "live"
    assert row["step"] == dep["step"]
    assert (row["app_url"], row["repo_url"], row["database_url"]) == (
        dep["urls"]["app"],
        dep["urls"]["repo"],
        dep["urls"]["database"],
    )
    assert row["health"] == dep["health"]
    assert row["error"] == dep["error"]
    states = {s["step"]: s["state"] for s in row["steps"]}
    assert states and set(states.values()) <= {"done", "skipped"}, row["steps"]
    assert all(s["started_at"] or s["state"] == "skipped" for s in row["steps"])
    assert row["log_tail"] and len(row["log_tail"]) <= 50


def _no_secrets(
    row: dict[str, Any], sandbox: SandboxProcess, dashboard: Dashboard, running: RunningDispatcher
) -> None:
    known = {
        **sandbox_secrets(sandbox),
        "dashboard secret key": dashboard.secret_key,
        "dashboard signing key": dashboard.signing_key["private_pem"],
        "hook secret": running.secret.decode(),
        "seal private key": running.settings.runner.seal_private_key,
    }
    blob = json.dumps(row)
    assert not [name for name, value in known.items() if value and value in blob]


def test_each_status_change_reaches_the_row_in_order(
    sandbox: SandboxProcess,
    dashboard: Dashboard,
    start_dispatcher: Callable[..., RunningDispatcher],  # noqa: F811
    unique: str,
) -> None:
    running = _mirrored(dashboard, start_dispatcher)
    _, token, row_id = _queue_row(dashboard)
    response = running.submit("proj", f"fb-{unique}", key=idempotency_key(row_id))
    assert response.status_code == 202, response.text
    final = running.wait_terminal(response.json()["id"])
    assert final["status"] == "live", final
    row = _wait_row(dashboard, token, row_id, lambda r: r["status"] == "live")
    _matches(row, running.get(final["id"]))
    history = _history(dashboard, row_id)
    statuses = [s for s, _ in history]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "live"
    assert [ORDER[s] for s in statuses] == sorted(ORDER[s] for s in statuses), statuses
    versions = [v for _, v in history]
    assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
    _no_secrets(row, sandbox, dashboard, running)


def test_a_dashboard_outage_never_blocks_a_deploy_and_is_caught_up(
    sandbox: SandboxProcess,
    dashboard: Dashboard,
    start_dispatcher: Callable[..., RunningDispatcher],  # noqa: F811
    unique: str,
) -> None:
    running = _mirrored(dashboard, start_dispatcher)
    _, token, row_id = _queue_row(dashboard)
    rest = f"^/sb/{dashboard.ref}/rest/v1/deployments"
    sandbox.set_faults(
        [{"service": "apps", "path": rest, "action": "status", "status": 503, "times": 100000}]
    )
    response = running.submit("proj", f"fb-{unique}", key=idempotency_key(row_id))
    assert response.status_code == 202, response.text
    final = running.wait_terminal(response.json()["id"])
    assert final["status"] == "live", final  # the outage did not fail or block the deploy
    assert _history(dashboard, row_id) == [("queued", 0)]  # nothing reached the row
    sandbox.set_faults([])
    row = _wait_row(dashboard, token, row_id, lambda r: r["status"] == "live")
    _matches(row, running.get(final["id"]))
    # A write retried across the end of the outage may land an older (lower-versioned) state
    # first; the order still holds and the newest state is the last word.
    history = _history(dashboard, row_id)
    assert [ORDER[s] for s, _ in history] == sorted(ORDER[s] for s, _ in history), history
    assert history[-1][0] == "live" and [v for _, v in history] == sorted(v for _, v in history)
    _no_secrets(row, sandbox, dashboard, running)
