"""The mirror never stops short: a refused write (a 4xx from the dashboard) is not taken as
written, and what the app's page carries cannot make a row unwritable. All parts real but the
clock: a SQLite dispatcher store behind the core's front door, the writer (supabase-py) against
the sandbox's dashboard project, its faults injected by the sandbox; the periodic re-sync is
driven by an injected monotonic clock, so no test waits for it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dispatcher.core.deployments import Deployments
from dispatcher.core.ports import NewEvent
from dispatcher.mirror.rows import idempotency_key
from dispatcher.mirror.worker import Mirror
from dispatcher.mirror.writer import Writer, WriterSettings
from dispatcher.model import Patch, Status
from dispatcher.store.open import open_store
from runner.masking import Masker
from tests.forgeboard.conftest import Dashboard
from tests.support.sandbox import SandboxProcess

pytestmark = [pytest.mark.clis, pytest.mark.postgres]
RESYNC_S = 30.0


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    deployments: Deployments
    mirror: Mirror
    clock: Clock
    writer: Writer

    def queue(self) -> tuple[str, str]:
        """(deployment id, row id): a row the dashboard queued and its running deployment."""
        created = (
            self.writer.client.table("deployments")
            .insert(
                {"request_id": str(uuid.uuid4()), "project_id": "p", "owner_id": str(uuid.uuid4())}
            )
            .execute()
        )
        row_id = str(created.data[0]["id"])
        dep, _ = self.deployments.store.submit("p", "shop", "/b", idempotency_key(row_id))
        self.deployments.store.update(dep.id, Patch(status=Status.RUNNING, step="github"))
        return dep.id, row_id

    def row(self, row_id: str) -> dict[str, Any]:
        found = self.writer.client.table("deployments").select("*").eq("id", row_id).execute()
        data: dict[str, Any] = found.data[0]
        return data


def _rig(dashboard: Dashboard, tmp_path: Path, table: str = "deployments") -> Iterator[Rig]:
    settings = WriterSettings(
        dashboard.url, dashboard.secret_key, table=table, ca_file=dashboard.ca_file, timeout_s=5
    )
    writer = Writer(settings, sleep=lambda _: None)
    store = open_store(f"sqlite:///{tmp_path / 'dispatcher.db'}")
    store.migrate()
    clock = Clock()
    front = Deployments(store, builds_root=tmp_path)
    mirror = Mirror(front, writer, Masker(), poll_s=1.0, resync_s=RESYNC_S, clock=clock)
    try:
        yield Rig(front, mirror, clock, writer)
    finally:
        writer.close()
        store.close()


@pytest.fixture
def rig(dashboard: Dashboard, tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(dashboard, tmp_path)


def test_a_404_on_the_final_write_is_written_at_the_next_resync(
    sandbox: SandboxProcess,
    dashboard: Dashboard,
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dep_id, row_id = rig.queue()
    assert rig.mirror.sync_once()
    assert rig.row(row_id)["status"] == "running"
    rest = f"^/sb/{dashboard.ref}/rest/v1/deployments"
    sandbox.set_faults(
        [{"service": "apps", "path": rest, "action": "status", "status": 404, "times": 10**6}]
    )
    try:
        rig.deployments.store.update(dep_id, Patch(status=Status.LIVE, step="health"))
        with caplog.at_level(logging.DEBUG, "forge.dispatcher.mirror"):
            assert not rig.mirror.sync_once()  # refused: not written, not settled
            rig.mirror.sync_once()  # not due yet: no second try, no second error line
    finally:
        sandbox.set_faults([])
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert f"row {row_id} of {dep_id}" in errors[0] and "HTTP 404" in errors[0], errors
    assert "None: None" not in errors[0]
    assert rig.row(row_id)["status"] == "running"
    # The dashboard is back; no change comes and nothing restarts: the re-sync writes it.
    rig.clock.now += RESYNC_S
    assert rig.mirror.sync_once()
    assert rig.row(row_id)["status"] == "live"
    version = rig.row(row_id)["version"]
    rig.clock.now += 10 * RESYNC_S
    assert rig.mirror.sync_once() and rig.row(row_id)["version"] == version  # settled


def test_a_nul_in_the_apps_page_still_ends_live(rig: Rig) -> None:
    dep_id, row_id = rig.queue()
    page = "<html>\x00binary\x00junk \ud800 </html>"
    rig.deployments.store.append_events(
        dep_id, [NewEvent(1, "log", "2026-12-08T05:00:00.000Z", {"message": f"fetched {page}"})]
    )
    rig.deployments.store.update(
        dep_id,
        Patch(status=Status.LIVE, step="health", health={"status": 200, "excerpt": page}),
    )
    assert rig.mirror.sync_once()
    row = rig.row(row_id)
    assert row["status"] == "live"
    assert row["health"]["excerpt"] == "<html>\ufffdbinary\ufffdjunk \ufffd </html>"
    assert row["log_tail"][-1].startswith("fetched <html>\ufffdbinary")


def test_a_refusal_that_never_passes_is_logged_once_with_its_code(
    dashboard: Dashboard, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The `projects` table has none of the row's columns: PostgREST's PGRST204, for good.
    for rig in _rig(dashboard, tmp_path, table="projects"):
        rig.queue()
        with caplog.at_level(logging.DEBUG, "forge.dispatcher.mirror"):
            for _ in range(4):
                assert not rig.mirror.sync_once()
                rig.clock.now += RESYNC_S
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 4  # tried again at every re-sync ...
        assert [r.levelno for r in refusals] == [logging.ERROR] + [
            logging.DEBUG
        ] * 3  # ... said once
        said = refusals[0].getMessage()
        assert "HTTP 400" in said and "PGRST204" in said and "Could not find the" in said
