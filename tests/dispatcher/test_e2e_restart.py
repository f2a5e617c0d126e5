"""A dispatcher killed with SIGKILL while three deploys run, then started again on the same
state (issue 5, "What it must show" 4).

The dispatcher is a separate process here (`forge-dispatcher serve`, configured only by its
environment: the hook secret, the builds root, an SQLite file, the launcher, the state folder
and the sandbox's variables). Three deploys are submitted into a slowed sandbox (time scale
0.05: Supabase provisions for 4.5 s, a Vercel build takes 6 s), so all three are mid-run when
the dispatcher dies. The runners outlive it (containers; processes in sessions of their own).
The new dispatcher reconciles: it re-attaches to each runner, streams its log from the start
and stores only what was not stored yet. Then:

- all three end live, their true outcome (the runner's own eof);
- each has a complete event log: one attempt, runner seqs 1..n each exactly once, the eof last;
  the re-attach shows as a `status` event with `reattached: true`;
- no runner is left: no container with the forge label of these deployments (`docker ps -a`),
  no secrets file in /dev/shm, no attempt folder, no runner process.

With the Docker launcher (what the issue asks) and with the process launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from dispatcher.core.attempts import build_spec
from dispatcher.core.ingest import Ingestor
from dispatcher.core.ports import attempt_name
from dispatcher.core.service import Dispatcher
from dispatcher.embedded import _free_port
from dispatcher.launchers.docker.files import SECRETS_ROOT, attempt_folder
from dispatcher.launchers.process.launcher import ProcessLauncher
from dispatcher.model import Status
from runner.masking import Masker
from tests.dispatcher.conftest import (
    Api,
    dispatcher_env,
    gone,
    local_settings,
    migrated_store,
    process_path,
)
from tests.support import runner as runner_support
from tests.support.sandbox import SandboxProcess

DEPLOYS = 3


class ServeProcess:
    """`forge-dispatcher serve` as a child process, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        program = Path(sys.executable).parent / "forge-dispatcher"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(program), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"the dispatcher exited:\n{self.tail()}"
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"the dispatcher did not start:\n{self.tail()}"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def serve_env(
    sandbox: SandboxProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The environment of `forge-dispatcher serve` for the test's launcher (its parameter)."""
    launcher = str(request.param)
    if launcher == "docker":
        request.getfixturevalue("runner_image")
    builds, state = tmp_path / "builds", tmp_path / "state"
    builds.mkdir()
    state.mkdir()
    env = dispatcher_env(sandbox, builds, state, f"sqlite:///{state / 'dispatcher.db'}", launcher)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ", "DOCKER_HOST")}
    # Polls at 0.3 s: at the knobs' 0.02 s, three runners waiting 4.5 s for Supabase would
    # spend its 120 calls a minute.
    slow = {"FORGE_POLL_INTERVAL_S": "0.3"}
    yield {**keep, **env, **slow, "PATH": process_path(), "HOME": str(tmp_path)}


def runner_seqs(events: list[dict[str, Any]], attempt: int) -> list[int]:
    return [e["seq"] for e in events if e["attempt"] == attempt and e["seq"] is not None]


def ours(docker_client: Any, ids: list[str]) -> list[str]:
    """The containers (any state) carrying the forge label of one of these deployments."""
    found = []
    for dep_id in ids:
        for box in docker_client.containers.list(
            all=True, filters={"label": f"forge.deploy_id={dep_id}"}
        ):
            found.append(f"{box.name} ({box.status})")
    return found


@pytest.mark.clis
@pytest.mark.postgres
@pytest.mark.parametrize(
    "serve_env",
    [pytest.param("docker", marks=pytest.mark.docker, id="docker"), "process"],
    indirect=True,
)
def test_sigkill_mid_deploys_then_restart_ends_each_live_with_its_whole_log(
    serve_env: dict[str, str],
    sandbox: SandboxProcess,
    tmp_path: Path,
    unique: str,
    request: pytest.FixtureRequest,
) -> None:
    launcher = serve_env["FORGE_LAUNCHER"]
    docker_client = request.getfixturevalue("docker_client") if launcher == "docker" else None
    state = Path(serve_env["FORGE_STATE_DIR"])
    first = ServeProcess(serve_env, tmp_path / "dispatcher-1.log")
    second = ServeProcess(serve_env, tmp_path / "dispatcher-2.log")
    ids: list[str] = []
    try:
        sandbox.set_time_scale(0.05)
        first.start()
        api = Api(
            first.url, serve_env["FORGE_HOOK_SECRET"].encode(), Path(serve_env["FORGE_BUILDS_ROOT"])
        )
        ids = [api.deploy(f"rs-{unique}-{i}")["id"] for i in range(DEPLOYS)]
        for dep_id in ids:  # each runner has started its steps
            api.wait(dep_id, lambda d: d["status"] == "running" and d["step"] is not None, 60)
        first.kill()
        mid = {dep_id: len(runner_seqs(stored(state, dep_id), 1)) for dep_id in ids}

        second.start()
        api.url = second.url
        finals = [api.wait_terminal(dep_id, 180) for dep_id in ids]
        assert [f["status"] for f in finals] == ["live"] * DEPLOYS, (finals, second.tail())
        for dep_id in ids:
            events = api.events_jsonl(dep_id)
            runner_support.CAPTURED.append(json.dumps(events))
            seqs = runner_seqs(events, 1)
            assert seqs == list(range(1, len(seqs) + 1)), (dep_id, seqs)
            runner_events = [e for e in events if e["seq"] is not None]
            assert runner_events[-1]["type"] == "eof", runner_events[-3:]
            assert runner_events[-1]["payload"] == {"outcome": "live", "exit_code": 0}
            assert {e["attempt"] for e in events} == {1}
            notes = [e["payload"] for e in events if e["type"] == "status"]
            assert [n["status"] for n in notes] == ["running", "running", "live"], notes
            assert [n["reattached"] for n in notes[:2]] == [False, True], notes
            assert len(seqs) > mid[dep_id], "nothing was streamed after the restart"
        with capsys_note(request):
            print(f"\n{launcher}: runner events stored before the kill: {sorted(mid.values())}")

        # Nothing left of the runners.
        for dep_id in ids:
            assert not attempt_folder(dep_id, 1, SECRETS_ROOT).exists()
            assert not (state / "runs" / attempt_name(dep_id, 1)).exists()
            if launcher == "process":
                refs = [
                    e["payload"]["ref"]
                    for e in api.events_jsonl(dep_id)
                    if e["type"] == "status" and e["payload"].get("ref")
                ]
                assert refs and all(gone(int(ref)) for ref in refs), refs
        if docker_client is not None:
            assert ours(docker_client, ids) == []
    finally:
        first.stop()
        second.stop()
        if docker_client is not None:
            for dep_id in ids:
                for box in docker_client.containers.list(
                    all=True, filters={"label": f"forge.deploy_id={dep_id}"}
                ):
                    box.remove(force=True)


@contextlib.contextmanager
def capsys_note(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print past pytest's capture (a measurement the report quotes)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        yield


def stored(state: Path, deployment_id: str) -> list[dict[str, Any]]:
    """The deployment's events as the (killed) dispatcher left them in its SQLite file."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(state / "dispatcher.db")) as conn:
        rows = conn.execute(
            "SELECT attempt, runner_seq FROM events WHERE deployment_id = ? ORDER BY id",
            (deployment_id,),
        ).fetchall()
    return [{"attempt": a, "seq": s} for a, s in rows]


def test_a_restart_after_the_eof_was_stored_keeps_the_runners_own_outcome(
    tmp_path: Path,
) -> None:
    """A dispatcher that died after storing a runner's whole stream (its eof included) but
    before writing the status: the next one re-attaches, stores nothing twice, and concludes
    from the stored eof (here the runner's bad_input: no provider settings were given), not
    from "exited without a final event"."""
    builds = tmp_path / "builds"
    (builds / "app").mkdir(parents=True)
    settings = local_settings(builds, tmp_path / "state")
    store = migrated_store(settings)
    launcher = ProcessLauncher(settings.state_dir / "runs")
    dispatcher = Dispatcher(settings, store, launcher)
    try:
        store.submit("p1", "app", str(builds / "app"), None)
        dep = store.claim(settings.attempts.replica_id, 4)
        assert dep is not None
        # What the first dispatcher did before it died: launch, and store the whole stream.
        handle = launcher.launch(build_spec(settings, dep, builds / "app", {}))
        first = Ingestor(partial(dispatcher.deployments.record, dep.id), dep.attempt, Masker())
        first.note("status", status="running", ref=handle.ref, reattached=False)
        for line in launcher.stream(handle):
            first.line(line)
        first.flush()
        assert launcher.wait(handle, 30).code == 2
        stored_before = store.events(dep.id)
        assert stored_before[-1].type == "eof"

        dispatcher.start()  # reconcile: re-attach to the (ended) runner
        deadline = time.monotonic() + 30
        while (current := store.get(dep.id)) is not None and current.status is Status.RUNNING:
            assert time.monotonic() < deadline, "the re-attached attempt did not end"
            time.sleep(0.05)
        assert current is not None
        result = next(e.payload for e in stored_before if e.type == "result")
        assert (current.status, current.error, current.exit_code) == (
            Status.FAILED,
            result["error"],
            2,
        )
        assert "GH_TOKEN" in (current.error or "")
        events = store.events(dep.id)
        seqs = [e.runner_seq for e in events if e.runner_seq is not None]
        assert seqs == list(range(1, len(seqs) + 1))  # nothing stored twice
        assert [e.payload["status"] for e in events if e.type == "status"] == [
            "running",
            "running",
            "failed",
        ]
        assert launcher.running() == []
    finally:
        dispatcher.stop()
        store.close()
