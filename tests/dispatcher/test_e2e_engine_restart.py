"""The Docker engine restarted under a running deploy (issue 13, "Dispatcher chaos").

A dispatcher (Docker launcher) on an engine of the test's own (`tests.support.engine`: its own
containerd, data root, socket and bridge; the machine's engine is not touched). Once the runner has
started its steps the engine is restarted, gracefully (SIGTERM: it stops the runner's
container) or as a crash (SIGKILL: its next start stops it). Before, the attempt's `wait` met
the closed socket and the deployment ended "dispatcher error: ('Connection aborted.',
FileNotFoundError(2, ...))" — and a graceful restart's SIGTERM would have read as a user's
cancel. Now the dispatcher waits the engine out (its log says "Docker engine unavailable" and
"available again"), reads the rest of the runner's output, and ends the deployment `failed`
saying the engine went away; a retry resumes it to `live` with one of each resource.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.dispatcher.conftest import RunningDispatcher
from tests.support.engine import Engine
from tests.support.sandbox import SandboxProcess, owned_by

pytestmark = [pytest.mark.docker, pytest.mark.clis, pytest.mark.postgres]

# Steps well before the end: the restart lands while the runner still has work to do.
MID_DEPLOY = {"github.repo", "supabase.project", "vercel.project", "github.push", "supabase.keys"}


@pytest.fixture(scope="module")
def own_engine(runner_image: str) -> Iterator[Engine]:
    engine = Engine()
    try:
        engine.start()
        engine.load(runner_image)
        yield engine
    finally:
        engine.close()


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "crash"])
def test_an_engine_restart_mid_deploy_fails_naming_it_and_a_retry_resumes_live(
    own_engine: Engine,
    start_dispatcher: Callable[..., RunningDispatcher],
    sandbox: SandboxProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unique: str,
    kill: bool,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", own_engine.host)  # docker.from_env() in the dispatcher
    e2e = start_dispatcher("docker")
    name = f"eng-{unique}"
    dep = e2e.deploy(name)["id"]
    e2e.wait(dep, lambda d: d["step"] in MID_DEPLOY, 180)
    with caplog.at_level(logging.WARNING, "forge.dispatcher.launcher"):
        own_engine.restart(kill=kill)
        done = e2e.wait_terminal(dep, 300)
    assert done["status"] == "failed", done
    assert "the Docker engine went away" in str(done["error"]), done
    assert "retry resumes" in str(done["error"])

    said = [r.getMessage() for r in caplog.records if r.name == "forge.dispatcher.launcher"]
    assert [m.split(":")[0].split(" after")[0] for m in said] == [
        "Docker engine unavailable",
        "Docker engine available again",
    ], said
    events = e2e.events_jsonl(dep)
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # each runner event once, none missing
    notes = [e["payload"] for e in events if e["type"] == "log" and e["seq"] is None]
    assert any(n.get("source") == "backend-outage" for n in notes), notes

    assert e2e.action(dep, "retry").status_code in (200, 202)
    again = e2e.wait_terminal(dep, 300)
    assert (again["status"], again["attempt"]) == ("live", 2), again
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 1, "vercel": 1, "deployments": 1}


def test_the_machines_engine_keeps_its_default_bridge(
    own_engine: Engine, runner_image: str
) -> None:
    """The suite's engine started and restarted beside it, the machine's engine still runs a
    container on its default network. A daemon with `--bridge=none` deleted the host's
    `docker0`, and every later `docker run` failed: "could not find bridge docker0"."""
    own_engine.restart(kill=True)
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", "bridge", "--entrypoint", "true", runner_image],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
