"""The dispatcher end to end, all parts real: a signed hook → a deploy of the example app by a
runner (a local process, or the runner image in Docker) against the sandbox → live.

- The SSE stream, followed live from the submit, equals the stored events and the JSON-lines
  form; `Last-Event-ID` resumes it. GET shows the current step while it runs and the URLs at
  the end (issue 5, "What it must show" 1), with the process and the Docker launcher and with
  the SQLite and the PostgreSQL store.
- Cancel mid-deploy: the runner stops at its next safe point within the grace (its own
  `cancelled` eof, not a SIGKILL), the container or process is gone; retry resumes and ends
  live with one repo, one Supabase project, one Vercel project (5).
- No token, database password or API key in any row of any table of the store, any event, any
  API answer, or `docker inspect` of the runner's container (6), checked after each of these.
- Cancels racing the queue: cancelled while queued, while being claimed (the worker sees the
  flag and launches nothing) or while running, every deployment ends cancelled and no runner
  is left.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from dispatcher.core.hub import EventHub
from dispatcher.core.ports import attempt_name
from dispatcher.core.service import Dispatcher
from dispatcher.launchers.process.launcher import ProcessLauncher
from dispatcher.model import Patch, Status, StoredEvent
from tests.dispatcher.conftest import (
    RunningDispatcher,
    dump_postgres,
    dump_sqlite,
    e2e_params,
    gone,
    leaks,
    local_settings,
    migrated_store,
    sandbox_secrets,
)
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess


def owned(sandbox: SandboxProcess, name: str) -> tuple[int, int, int]:
    """How many GitHub repos, Supabase projects and Vercel projects carry the app's name."""
    res = sandbox.resources()
    return (
        sum(r["name"] == name for r in res["github"]["repos"]),
        sum(p["name"] == f"forge-{name}" for p in res["supabase"]["projects"]),
        sum(p["name"] == name for p in res["vercel"]["projects"]),
    )


class Watcher:
    """Samples a deployment while it runs, from a thread: the steps GET shows, and (Docker)
    the runner container's `docker inspect`."""

    def __init__(self, e2e: RunningDispatcher, deployment_id: str) -> None:
        self.e2e = e2e
        self.deployment_id = deployment_id
        self.steps: list[str] = []
        self.inspected: dict[str, str] = {}
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self.errors, self.errors

    def _run(self) -> None:
        try:
            while not self._stop.wait(0.05):
                dep = self.e2e.get(self.deployment_id)
                if dep["status"] == "running" and dep["step"] and dep["step"] not in self.steps:
                    self.steps.append(dep["step"])
                if self.e2e.launcher_kind == "docker" and dep["attempt"] >= 1:
                    self._inspect(attempt_name(self.deployment_id, dep["attempt"]))
        except BaseException as e:  # reported by __exit__
            self.errors.append(e)

    def _inspect(self, name: str) -> None:
        if name in self.inspected:
            return
        client = self.e2e.dispatcher.launcher.client  # type: ignore[attr-defined]
        with contextlib.suppress(docker.errors.NotFound):
            self.inspected[name] = json.dumps(client.api.inspect_container(name))


def runner_events(events: list[dict[str, Any]], attempt: int) -> list[dict[str, Any]]:
    return [e for e in events if e["attempt"] == attempt and e["seq"] is not None]


def assert_complete(events: list[dict[str, Any]], attempt: int, outcome: str) -> None:
    """The attempt's runner events: seqs 1..n, each once, ending with an eof of `outcome`."""
    mine = runner_events(events, attempt)
    assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1)), [e["seq"] for e in mine]
    assert mine[-1]["type"] == "eof", mine[-3:]
    assert mine[-1]["payload"]["outcome"] == outcome, mine[-3:]


def assert_no_secret(
    e2e: RunningDispatcher, sandbox: SandboxProcess, inspected: dict[str, str] | None = None
) -> None:
    """Issue 5, item 6: no secret value in the store's rows, the events, the API's answers or
    `docker inspect`."""
    known = sandbox_secrets(sandbox)
    known["hook secret"] = e2e.secret.decode()
    known["seal private key"] = e2e.settings.runner.seal_private_key
    url = e2e.settings.store.url
    rows = (
        dump_sqlite(Path(url.removeprefix("sqlite:///")))
        if url.startswith("sqlite")
        else (dump_postgres(url))
    )
    assert rows["deployments"] and rows["events"] and rows["sealed_secrets"], rows.keys()
    events = {
        dep.id: json.dumps([e.public() for e in e2e.store.events(dep.id)])
        for dep in e2e.store.list_deployments(None, limit=1000)
    }
    texts: dict[str, str] = {
        **{f"table {t}": "\n".join(r) for t, r in rows.items()},
        **{f"events of {d}": text for d, text in events.items()},
        "API answers": "\n".join(e2e.responses),
        **{f"docker inspect {n}": text for n, text in (inspected or {}).items()},
    }
    runner_support.CAPTURED.extend(events.values())  # the session's own scan sees them too
    found = leaks(texts, known)
    assert not found, found


@pytest.mark.parametrize(
    "e2e",
    e2e_params("docker-sqlite", "process-sqlite", "process-postgresql"),
    indirect=True,
)
def test_a_signed_hook_deploys_the_example_live_and_sse_equals_the_stored_events(
    e2e: RunningDispatcher, sandbox: SandboxProcess, unique: str
) -> None:
    name = f"e2e-{unique}"
    created = e2e.deploy(name)
    assert created["status"] == "queued" and created["project_name"] == name
    dep_id = created["id"]

    with Watcher(e2e, dep_id) as watcher:
        streamed = e2e.events_sse(dep_id)  # follows live from the first event to the end
    final = e2e.get(dep_id)
    assert final["status"] == "live", (final, streamed[-5:])

    stored = e2e.stored(dep_id)
    assert streamed == stored
    assert e2e.events_jsonl(dep_id) == stored
    assert [e["id"] for e in stored] == list(range(1, len(stored) + 1))
    assert e2e.events_sse(dep_id, last_event_id=5) == stored[5:]  # resumed
    assert_complete(stored, 1, "live")
    assert stored[0]["type"] == "status" and stored[0]["payload"]["status"] == "running"
    assert stored[-1]["type"] == "status" and stored[-1]["payload"]["status"] == "live"

    # GET showed the steps as they ran, and shows the URLs the runner's result gave.
    started = [e["payload"]["step"] for e in stored if e["type"] == "step_started"]
    assert len(watcher.steps) >= 2 and set(watcher.steps) <= set(started), watcher.steps
    assert final["step"] == started[-1]
    result = next(e["payload"] for e in stored if e["type"] == "result")
    assert final["urls"] == {k: result["urls"][k] for k in ("app", "repo", "database")}
    assert all(final["urls"].values()), final["urls"]
    assert final["attempt"] == 1 and final["exit_code"] == 0 and final["error"] is None
    assert final["started_at"] and final["finished_at"]
    assert owned(sandbox, name) == (1, 1, 1)

    listed = e2e.request("GET", f"/v1/deployments?project_id={name}").json()["deployments"]
    assert [d["id"] for d in listed] == [dep_id]
    assert all(h.deployment_id != dep_id for h in e2e.dispatcher.launcher.running())
    if e2e.launcher_kind == "docker":
        assert watcher.inspected, "the runner's container was never seen running"
        assert all("/run/forge/secrets.env" in text for text in watcher.inspected.values())
    assert_no_secret(e2e, sandbox, watcher.inspected)


@pytest.mark.parametrize("backend", e2e_params("docker-sqlite", "process-postgresql"))
def test_cancel_mid_deploy_ends_cancelled_in_the_grace_and_a_retry_ends_live(
    start_dispatcher: Callable[..., RunningDispatcher],
    backend: str,
    sandbox: SandboxProcess,
    unique: str,
) -> None:
    # Slowed (Supabase provisions for 4.5 s: time to cancel mid-deploy), polling at 0.2 s (at
    # the knobs' 0.02 s, a runner waiting 4.5 s would spend most of Supabase's 120 calls/min).
    launcher, store = backend.split("-")
    e2e = start_dispatcher(launcher, store, FORGE_POLL_INTERVAL_S="0.2")
    sandbox.set_time_scale(0.05)
    name = f"e2e-{unique}"
    dep_id = e2e.deploy(name)["id"]
    dep = e2e.wait(dep_id, lambda d: d["status"] == "running" and d["step"] is not None, 60)
    e2e.wait(dep_id, lambda d: d["urls"]["repo"] is not None, 60)  # something made already

    with Watcher(e2e, dep_id) as watcher:
        answer = e2e.action(dep_id, "cancel")
        assert answer.status_code == 202, answer.text
        assert answer.json()["cancel_requested"] is True
        final = e2e.wait_terminal(dep_id, 120)
    assert final["status"] == "cancelled", final
    events = e2e.stored(dep_id)
    # Within the grace: the runner wrote its own cancelled eof (exit 4); a SIGKILL writes none.
    assert_complete(events, 1, "cancelled")
    assert final["exit_code"] == 4 and final["error"] is not None
    again = e2e.action(dep_id, "cancel")
    assert again.status_code == 409, again.text

    # The runner is gone: no container, no process, no attempt folder.
    launcher = e2e.dispatcher.launcher
    assert all(h.deployment_id != dep_id for h in launcher.running())
    if e2e.launcher_kind == "docker":
        with pytest.raises(docker.errors.NotFound):
            launcher.client.containers.get(attempt_name(dep_id, 1))  # type: ignore[attr-defined]
    else:
        assert isinstance(launcher, ProcessLauncher)
        assert not (launcher.workdir / attempt_name(dep_id, 1)).exists()
        pid = int(next(e for e in events if e["type"] == "status")["payload"]["ref"])
        assert gone(pid), f"the runner's wrapper {pid} still runs"

    retried = e2e.action(dep_id, "retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "queued"
    with Watcher(e2e, dep_id) as second:
        done = e2e.wait_terminal(dep_id, 180)
    assert done["status"] == "live", (done, e2e.stored(dep_id)[-5:])
    assert done["attempt"] == 2 and done["exit_code"] == 0 and done["error"] is None
    events = e2e.stored(dep_id)
    assert_complete(events, 2, "live")
    assert e2e.events_sse(dep_id) == events
    assert owned(sandbox, name) == (1, 1, 1)
    assert dep["id"] == dep_id
    assert_no_secret(e2e, sandbox, {**watcher.inspected, **second.inspected})


@pytest.mark.clis
@pytest.mark.postgres
def test_cancels_racing_the_queue_end_every_deployment_cancelled_and_leave_no_runner(
    start_dispatcher: Callable[..., RunningDispatcher], sandbox: SandboxProcess, unique: str
) -> None:
    """Twelve deploys, each cancelled from its own thread as soon as it is accepted: whether
    the cancel finds it queued, being claimed or running, it ends cancelled, and no runner is
    left. A second deploy of a project waits in the queue; cancelled there, it never starts."""
    e2e = start_dispatcher(FORGE_MAX_CONCURRENT="4")
    names = [f"cq-{unique}-{i}" for i in range(12)]
    for name in names:
        e2e.build(name)

    def submit_and_cancel(name: str) -> str:
        dep_id: str = e2e.submit(name, name).json()["id"]
        answer = e2e.action(dep_id, "cancel")
        assert answer.status_code in (202, 409), answer.text  # 409: it ended first
        return dep_id

    with ThreadPoolExecutor(12) as pool:
        ids = list(pool.map(submit_and_cancel, names))
    finals = [e2e.wait_terminal(dep_id, 120) for dep_id in ids]
    assert {f["status"] for f in finals} <= {"cancelled", "live"}, finals
    assert [f for f in finals if f["status"] == "cancelled"], finals
    for final in finals:
        events = e2e.stored(final["id"])
        assert events[-1]["type"] == "status", events[-3:]
        assert events[-1]["payload"]["status"] == final["status"]
    assert all(h.deployment_id not in ids for h in e2e.dispatcher.launcher.running())
    assert e2e.store.running() == []

    # Queued behind a running deploy of its project, then cancelled: it never starts.
    first = e2e.deploy(names[0])["id"]
    second = e2e.deploy(names[0])["id"]
    e2e.wait(first, lambda d: d["status"] == "running", 60)
    assert e2e.get(second)["status"] == "queued"
    cancelled = e2e.action(second, "cancel").json()
    assert (cancelled["status"], cancelled["attempt"]) == ("cancelled", 0), cancelled
    assert e2e.wait_terminal(first)["status"] == "live"
    assert e2e.get(second)["status"] == "cancelled"
    assert [e["payload"]["status"] for e in e2e.stored(second)] == ["cancelled"]


def test_a_deployment_claimed_with_its_cancel_already_requested_ends_without_a_runner(
    tmp_path: Path,
) -> None:
    """The window between a cancel's flag and its queued -> cancelled write: a worker that
    claims the deployment then sees the flag and ends it cancelled without launching."""
    builds = tmp_path / "builds"
    (builds / "app").mkdir(parents=True)
    settings = local_settings(builds, tmp_path / "state")
    store = migrated_store(settings)
    launcher = ProcessLauncher(tmp_path / "runs")
    try:
        dep, _ = store.submit("p1", "app", str(builds / "app"), None)
        store.update(dep.id, Patch(cancel_requested=True))
        claimed = store.claim("replica-1", 4)
        assert claimed is not None and claimed.status is Status.RUNNING
        published: list[StoredEvent] = []

        class Published(EventHub):
            def publish_all(self, events: Iterable[StoredEvent]) -> None:
                published.extend(events)

        core = Dispatcher(settings, store, launcher, hub=Published())
        final = core.workers.run(claimed, slot=False)
        assert (final.status, final.attempt) == (Status.CANCELLED, 1)
        assert launcher.running() == [] and store.running() == []
        events = store.events(dep.id)
        assert [(e.type, e.payload["status"]) for e in events] == [("status", "cancelled")]
        assert published == events
    finally:
        store.close()
