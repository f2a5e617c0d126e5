"""The mirror's parts on their own: the row computed from stored events (pure), the settings'
errors, and the writer against the sandbox's dashboard with injected faults (5xx, a write whose
answer is lost) and an injected sleep, so no test waits for a real backoff."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dispatcher.mirror import MirrorConfigError, settings_from_env
from dispatcher.mirror.rows import LOG_LINES, Folded, dashboard_row_id, row, version
from dispatcher.mirror.writer import DashboardDown, Writer, WriterSettings, Written
from dispatcher.model import Deployment, Status, StoredEvent
from runner.masking import Masker
from tests.forgeboard.conftest import Dashboard
from tests.support.sandbox import SandboxProcess


def _deployment(**changes: Any) -> Deployment:
    base: dict[str, Any] = {
        "id": "dep_0123456789abcdef01234567",
        "project_id": "p",
        "project_name": "shop",
        "build_dir": "/b/shop",
        "status": Status.RUNNING,
        "attempt": 1,
        "created_at": "2026-12-06T10:00:00.000Z",
        "updated_at": "2026-12-06T10:00:01.000Z",
        "idempotency_key": "forgeboard:" + "a" * 8 + "-aaaa-aaaa-aaaa-" + "a" * 12,
    }
    return Deployment(**{**base, **changes})


def _event(n: int, kind: str, attempt: int = 1, **payload: Any) -> StoredEvent:
    return StoredEvent("dep", n, attempt, kind, f"2026-12-06T10:00:{n:02d}.000Z", payload)


def test_the_row_folds_steps_masks_logs_and_orders_by_version() -> None:
    masker = Masker()
    masker.register("s3cr3t-token-value")
    folded = Folded()
    folded.add(
        [
            _event(1, "step_started", step="github"),
            _event(2, "log", level="info", message="token s3cr3t-token-value used"),
            _event(3, "step_finished", step="github", elapsed_s=1),
            _event(4, "step_started", step="supabase"),
            _event(5, "step_failed", step="supabase", error="boom s3cr3t-token-value"),
        ],
        masker,
    )
    dep = _deployment(error="failed: s3cr3t-token-value")
    fields = row(dep, folded, masker)
    assert [(s["step"], s["state"]) for s in fields["steps"]] == [
        ("github", "done"),
        ("supabase", "failed"),
    ]
    assert fields["steps"][0]["started_at"] and fields["steps"][0]["finished_at"]
    assert "s3cr3t" not in repr(fields)
    assert fields["version"] == version(dep, folded)
    later = _deployment(updated_at="2026-12-06T10:00:01.001Z")
    assert version(later, folded) > version(dep, folded)
    folded.add([_event(6, "log", level="info", message="x")], masker)
    assert version(dep, folded) > fields["version"]
    # A new attempt starts its steps afresh; the log stays bounded.
    folded.add([_event(7 + i, "log", 2, message=str(i)) for i in range(2 * LOG_LINES)], masker)
    folded.add([_event(500, "step_started", 2, step="github")], masker)
    assert [s["state"] for s in row(dep, folded, masker)["steps"]] == ["running"]
    assert len(folded.log) == LOG_LINES


def test_only_rows_the_dashboard_queued_are_mirrored() -> None:
    assert dashboard_row_id(_deployment()) is not None
    assert dashboard_row_id(_deployment(idempotency_key="someone-else")) is None
    assert dashboard_row_id(_deployment(idempotency_key="forgeboard:not-a-uuid")) is None
    assert dashboard_row_id(_deployment(idempotency_key=None)) is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"FORGEBOARD_SUPABASE_URL": "https://x.supabase.co"}, "FORGEBOARD_SUPABASE_SERVICE_KEY"),
        ({"FORGEBOARD_SUPABASE_SERVICE_KEY": "k"}, "FORGEBOARD_SUPABASE_URL"),
        ({"FORGEBOARD_SUPABASE_URL": "ftp://x", "FORGEBOARD_SUPABASE_SERVICE_KEY": "k"}, "URL"),
        (
            {
                "FORGEBOARD_SUPABASE_URL": "https://x",
                "FORGEBOARD_SUPABASE_SERVICE_KEY": "k",
                "FORGEBOARD_TABLE": "Robert'); drop",
            },
            "FORGEBOARD_TABLE",
        ),
    ],
)
def test_settings_errors_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(MirrorConfigError, match=named):
        settings_from_env(environ)


def test_no_settings_no_mirror() -> None:
    assert settings_from_env({}) is None


def _row(dashboard: Dashboard) -> str:
    user = str(uuid.uuid4())
    created = (
        dashboard.client(dashboard.secret_key)
        .table("deployments")
        .insert({"request_id": str(uuid.uuid4()), "project_id": "p", "owner_id": user})
        .execute()
    )
    row_id: str = created.data[0]["id"]
    return row_id


@pytest.mark.clis
@pytest.mark.postgres
def test_the_writer_retries_and_never_goes_back(
    sandbox: SandboxProcess, dashboard: Dashboard
) -> None:
    slept: list[float] = []
    settings = WriterSettings(
        dashboard.url, dashboard.secret_key, ca_file=dashboard.ca_file, timeout_s=2
    )
    writer = Writer(settings, sleep=slept.append)
    row_id = _row(dashboard)
    path = f"^/sb/{dashboard.ref}/rest/v1/deployments"
    try:
        sandbox.set_faults([{"service": "apps", "path": path, "action": "status", "times": 2}])
        assert writer.write(row_id, {"status": "running", "version": 10}) is Written.APPLIED
        assert slept == [0.5, 1.0]  # two 503s, then the write

        # The answer of an applied write is lost: the retry finds it done (same version).
        sandbox.set_faults(
            [{"service": "apps", "path": path, "action": "timeout_after_success", "times": 1}]
        )
        assert writer.write(row_id, {"status": "live", "version": 20}) is Written.STALE
        assert writer.write(row_id, {"status": "running", "version": 15}) is Written.STALE
        assert writer.write(str(uuid.uuid4()), {"status": "live", "version": 1}) is Written.MISSING

        sandbox.set_faults([{"service": "apps", "path": path, "action": "status", "times": 100}])
        with pytest.raises(DashboardDown):
            writer.write(row_id, {"status": "failed", "version": 30})
    finally:
        sandbox.set_faults([])
        writer.close()
    current = (
        dashboard.client(dashboard.secret_key)
        .table("deployments")
        .select("status, version")
        .eq("id", row_id)
        .single()
        .execute()
    )
    assert current.data == {"status": "live", "version": 20}
