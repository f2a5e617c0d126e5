"""Two dispatcher replicas on one PostgreSQL store share the queue: each deployment is claimed
by exactly one replica, once; never two running deploys of one project; both replicas work."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from runner.sealing import new_keypair
from tests.dispatcher.conftest import RunningDispatcher
from tests.support.sandbox import SandboxProcess

pytestmark = [pytest.mark.postgres, pytest.mark.clis]


def test_two_replicas_on_one_postgresql_share_the_queue(
    sandbox: SandboxProcess, start_dispatcher: Callable[..., RunningDispatcher]
) -> None:
    sandbox.set_time_scale(0)
    public, private = new_keypair()  # replicas share the sealing keys (one installation)
    shared = {
        "FORGE_SEAL_PUBLIC_KEY": public,
        "FORGE_SEAL_PRIVATE_KEY": private,
        "FORGE_MAX_CONCURRENT": "4",
    }
    # replica-a runs one deploy at a time, so replica-b's claims cannot all come too late
    # (with 4 slots each, a busy machine let replica-a claim all eight once)
    first = start_dispatcher(
        "process",
        "postgresql",
        FORGE_REPLICA_ID="replica-a",
        **{**shared, "FORGE_MAX_CONCURRENT": "1"},
    )
    second = start_dispatcher(
        "process",
        "postgresql",
        FORGE_REPLICA_ID="replica-b",
        FORGE_DATABASE_URL=first.settings.store.url,
        FORGE_HOOK_SECRET=first.settings.hook.secret.decode(),
        **shared,
    )
    tag = uuid.uuid4().hex[:6]
    projects = [f"rep{i}-{tag}" for i in range(4)]
    submitted = []
    for round_ in range(2):  # two deploys of each project, alternating replicas
        for i, name in enumerate(projects):
            via = first if (i + round_) % 2 == 0 else second
            submitted.append(via.deploy(name)["id"])

    finals = [first.wait_terminal(dep_id, timeout_s=300) for dep_id in submitted]
    assert {f["status"] for f in finals} == {"live"}, [(f["id"], f["error"]) for f in finals]
    store = first.store
    rows = [store.get(dep_id) for dep_id in submitted]
    assert all(row is not None and row.attempt == 1 for row in rows)  # claimed once each
    claimers = {row.claimed_by for row in rows if row is not None}
    assert claimers == {"replica-a", "replica-b"}, claimers
    for name in projects:  # one project's deploys never overlapped
        spans = sorted(
            (row.started_at, row.finished_at)
            for row in rows
            if row is not None and row.project_id == name
        )
        assert len(spans) == 2 and spans[0][1] is not None and spans[1][0] is not None
        assert spans[0][1] <= spans[1][0], spans
    resources = sandbox.resources()
    for name in projects:
        assert sum(r["name"] == name for r in resources["github"]["repos"]) == 1
        assert sum(p["name"] == name for p in resources["vercel"]["projects"]) == 1
