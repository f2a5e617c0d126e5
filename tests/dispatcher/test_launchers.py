"""Both launchers for real: a local `forge-runner` process and the runner image in Docker, each
deploying the example app into the sandbox.

Per backend: the stream parses as events and ends with a live `eof`, `wait` says 0; SIGTERM
mid-deploy ends it cancelled (exit 4) or killed after the grace; a second launcher instance
(a restarted dispatcher: same workdir, same engine) finds the attempt with `running()` and streams
it from its first event; launching one RunSpec twice, even at once, starts one runner; no token
value shows in the process's argv and environment nor in `docker inspect`; `remove` leaves
nothing. The time from `launch()` to the first stdout line is printed (median of 5), not asserted.

The Docker runner is on the host network (127.0.0.1 reaches the sandbox) with the sandbox's CA
and supabase profile mounted read-only at their own paths, as tests/image does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec
from dispatcher.core.secrets import split_env
from dispatcher.launchers.docker.files import SECRETS_ROOT, attempt_folder
from dispatcher.launchers.docker.launcher import DockerLauncher
from dispatcher.launchers.process.launcher import ProcessLauncher
from dispatcher.launchers.process.plan import default_base_env
from runner.events import Event, EventType, parse_event
from runner.sealing import new_keypair
from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.support import runner as runner_support
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess

EXAMPLE = REPO / "examples" / "hello-app"

Factory = Callable[[], Launcher]


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_launcher(
    backend: str, sandbox: SandboxProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Factory]:
    """Makes launcher instances of `backend` sharing one state (workdir / engine), as a
    restarted dispatcher would; at the end every attempt they know of is removed."""
    plain, _ = split_env(runner_support.runner_env(sandbox))
    made: list[Launcher] = []
    workdir = tmp_path / "runs"
    client = request.getfixturevalue("docker_client") if backend == "docker" else None
    image = request.getfixturevalue("runner_image") if backend == "docker" else ""

    def make() -> Launcher:
        launcher: Launcher
        if backend == "process":
            base = default_base_env()
            base["PATH"] = os.pathsep.join([str(REPO / "node_modules" / ".bin"), base["PATH"]])
            launcher = ProcessLauncher(workdir, base_env=base)
        else:
            files = [plain["FORGE_CA_FILE"], plain["SUPABASE_PROFILE"]]
            launcher = DockerLauncher(client, image, "host", read_only_files=files)
        made.append(launcher)
        return launcher

    try:
        yield make
    finally:
        for launcher in made[:1]:
            for handle in launcher.running():
                if handle.deployment_id.startswith("lt-"):
                    launcher.remove(handle)


def app_copy(tmp_path: Path) -> Path:
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build, symlinks=True)
    return build


def deploy_spec(sandbox: SandboxProcess, build: Path, name: str, **env: str) -> RunSpec:
    plain, secret = split_env(runner_support.runner_env(sandbox, **env))
    deploy_id = f"lt-{uuid.uuid4().hex[:12]}"
    return RunSpec(deploy_id, 1, build, ("deploy", "--name", name), env=plain, secrets=secret)


def tokens(sandbox: SandboxProcess) -> dict[str, str]:
    _, secret = split_env(runner_support.runner_env(sandbox))
    return secret


def events_of(lines: list[str]) -> list[Event]:
    runner_support.CAPTURED.append("\n".join(lines))
    return [parse_event(line) for line in lines if line.strip()]


def assert_complete(events: list[Event], deploy_id: str) -> None:
    assert events, "no event streamed"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.deploy_id for e in events} == {deploy_id}
    assert events[-1].type is EventType.EOF


def explain(launcher: Launcher, handle: Handle, lines: list[str]) -> str:
    tail = launcher.stderr_tail(handle, 60)
    runner_support.CAPTURED.append(tail)
    return "stdout tail:\n" + "\n".join(lines[-20:]) + f"\nstderr tail:\n{tail}"


def owned(sandbox: SandboxProcess, name: str) -> tuple[int, int, int]:
    res = sandbox.resources()
    return (
        sum(r["name"] == name for r in res["github"]["repos"]),
        sum(p["name"] == f"forge-{name}" for p in res["supabase"]["projects"]),
        sum(p["name"] == name for p in res["vercel"]["projects"]),
    )


def no_token_in(text: str, secrets: dict[str, str], where: str) -> None:
    leaked = [key for key, value in secrets.items() if value and value in text]
    assert not leaked, f"{leaked} in {where}"


def assert_no_token_outside(
    launcher: Launcher, handle: Handle, spec: RunSpec, secrets: dict[str, str]
) -> None:
    """The runner's argv and environment (process) or the container's inspect (Docker) name
    the secrets file and hold no token."""
    if isinstance(launcher, DockerLauncher):
        inspect = json.dumps(launcher.client.api.inspect_container(handle.ref))
        no_token_in(inspect, secrets, "docker inspect")
        assert "/run/forge/secrets.env" in inspect
        return
    assert isinstance(launcher, ProcessLauncher)
    folder = launcher.workdir / spec.name
    runner = json.loads((folder / "runner.json").read_text())
    for pid in (int(handle.ref), int(runner["pid"])):
        for part in ("cmdline", "environ"):
            try:
                raw = Path(f"/proc/{pid}/{part}").read_bytes()
            except FileNotFoundError:
                continue  # already ended
            no_token_in(raw.decode(errors="replace"), secrets, f"/proc/{pid}/{part}")
    secrets_file = folder / "secrets.env"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert (folder.stat().st_mode & 0o777) == 0o700


def assert_removed(launcher: Launcher, handle: Handle, spec: RunSpec) -> None:
    assert handle not in launcher.running()
    if isinstance(launcher, DockerLauncher):
        with pytest.raises(docker.errors.NotFound):
            launcher.client.containers.get(spec.name)
        assert not attempt_folder(spec.deployment_id, spec.attempt, SECRETS_ROOT).exists()
    else:
        assert isinstance(launcher, ProcessLauncher)
        assert not (launcher.workdir / spec.name).exists()
    launcher.remove(handle)  # gone already is fine


@pytest.mark.clis
@pytest.mark.postgres
def test_deploy_streams_every_event_to_a_live_eof(
    new_launcher: Factory, backend: str, sandbox: SandboxProcess, tmp_path: Path, unique: str
) -> None:
    launcher = new_launcher()
    assert launcher.health() is None
    name = f"lt-{unique}"
    spec = deploy_spec(sandbox, app_copy(tmp_path), name)
    handle = launcher.launch(spec)
    assert (handle.launcher, handle.deployment_id, handle.attempt) == (
        launcher.name,
        spec.deployment_id,
        1,
    )
    lines: list[str] = []
    for line in launcher.stream(handle):
        if not lines:
            assert_no_token_outside(launcher, handle, spec, tokens(sandbox))
        lines.append(line)
    events = events_of(lines)
    assert_complete(events, spec.deployment_id)
    assert events[-1].payload == {"outcome": "live", "exit_code": 0}, explain(
        launcher, handle, lines
    )
    assert launcher.wait(handle, 60) == Exit(0)
    assert "forge.runner" in launcher.stderr_tail(handle) or launcher.stderr_tail(handle) == ""
    # The runner's own copy of its events, kept apart from the engine's log (which a killed
    # engine can cut): the same lines. A process runner's stdout file is that record itself.
    assert launcher.recorded(handle) == (lines if backend == "docker" else [])
    assert handle in launcher.running()  # exited, kept until removed
    assert owned(sandbox, name) == (1, 1, 1)

    launcher.remove(handle)
    assert_removed(launcher, handle, spec)


@pytest.mark.clis
@pytest.mark.postgres
def test_sigterm_mid_deploy_ends_cancelled_and_a_resumed_attempt_ends_live(
    new_launcher: Factory, sandbox: SandboxProcess, tmp_path: Path, unique: str
) -> None:
    launcher = new_launcher()
    name = f"lt-{unique}"
    public, private = new_keypair()
    keys = {"FORGE_SEAL_PUBLIC_KEY": public, "FORGE_SEAL_PRIVATE_KEY": private}
    spec = deploy_spec(sandbox, app_copy(tmp_path), name, **keys)
    assert "FORGE_SEAL_PRIVATE_KEY" in spec.secrets
    handle = launcher.launch(spec)
    lines: list[str] = []
    terminated = False
    for line in launcher.stream(handle):
        lines.append(line)
        event = parse_event(line)
        if not terminated and event.type is EventType.CHECKPOINT:
            launcher.terminate(handle, grace_s=60)
            terminated = True
    assert terminated, explain(launcher, handle, lines)
    ended = launcher.wait(handle, 10)
    events = events_of(lines)
    if ended.reason == "killed":  # the grace passed: SIGKILL, no eof (not expected here)
        assert ended.code == 137, ended
    else:
        assert ended == Exit(4), explain(launcher, handle, lines)
        assert_complete(events, spec.deployment_id)
        assert events[-1].payload == {"outcome": "cancelled", "exit_code": 4}
    launcher.terminate(handle, grace_s=1)  # ended already: nothing to do
    launcher.remove(handle)
    assert_removed(launcher, handle, spec)

    # The retry: attempt 2, handed attempt 1's events (a read-only file) and the same secrets.
    retry = dataclasses.replace(spec, attempt=2, resume_events="\n".join(lines) + "\n")
    second = launcher.launch(retry)
    assert second.attempt == 2 and second.ref != handle.ref
    lines = list(launcher.stream(second))
    events = events_of(lines)
    assert_complete(events, spec.deployment_id)
    assert events[-1].payload == {"outcome": "live", "exit_code": 0}, explain(
        launcher, second, lines
    )
    assert launcher.wait(second, 60) == Exit(0)
    assert owned(sandbox, name) == (1, 1, 1)
    launcher.remove(second)
    assert_removed(launcher, second, retry)


@pytest.mark.clis
@pytest.mark.postgres
def test_a_second_launcher_reattaches_and_a_relaunch_starts_nothing(
    new_launcher: Factory, sandbox: SandboxProcess, tmp_path: Path, unique: str
) -> None:
    first, second = new_launcher(), new_launcher()
    name = f"lt-{unique}"
    spec = deploy_spec(sandbox, app_copy(tmp_path), name)
    with ThreadPoolExecutor(4) as pool:
        handles = list(pool.map(lambda launcher: launcher.launch(spec), [first, second] * 2))
    handle = handles[0]
    assert {h.ref for h in handles} == {handle.ref}, handles
    assert first.launch(spec) == handle

    # A restarted dispatcher: it only knows what running() tells it.
    found = [h for h in second.running() if h.deployment_id == spec.deployment_id]
    assert found == [handle]
    lines = list(second.stream(found[0]))
    events = events_of(lines)
    assert_complete(events, spec.deployment_id)
    assert events[-1].payload["outcome"] == "live", explain(second, handle, lines)
    assert second.wait(handle, 60) == Exit(0)
    assert first.wait(handle, 60) == Exit(0)
    assert list(first.stream(handle)) == lines  # the whole stream again, from the start
    assert first.launch(spec) == handle  # ended, still not started again
    assert owned(sandbox, name) == (1, 1, 1)
    if isinstance(first, DockerLauncher):
        boxes = first.client.containers.list(all=True, filters={"name": spec.name})
        assert len(boxes) == 1
    second.remove(handle)
    assert_removed(first, handle, spec)


@pytest.mark.clis
@pytest.mark.postgres
def test_time_from_launch_to_first_line(
    new_launcher: Factory,
    sandbox: SandboxProcess,
    tmp_path: Path,
    backend: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Five quick runs (a bad app name: settings read, then result and eof, no request)."""
    launcher = new_launcher()
    build = app_copy(tmp_path)
    samples = []
    for _ in range(6):  # the first one warms caches and is left out
        spec = deploy_spec(sandbox, build, "bad;name")
        started = time.perf_counter()
        handle = launcher.launch(spec)
        stream = launcher.stream(handle)
        first = next(stream)
        samples.append(time.perf_counter() - started)
        lines = [first, *stream]
        events = events_of(lines)
        assert events[-1].payload == {"outcome": "bad_input", "exit_code": 2}
        assert launcher.wait(handle, 60) == Exit(2)
        launcher.remove(handle)
    median = statistics.median(samples[1:])
    report = (
        f"\n{backend} launcher: launch() -> first stdout line, median of 5: {median:.3f} s "
        f"(runs: {', '.join(f'{s:.3f}' for s in samples[1:])})\n"
    )
    with capsys.disabled():
        print(report)


@pytest.mark.clis
@pytest.mark.postgres
def test_a_dispatcher_killed_mid_run_leaves_the_process_runner_to_finish(
    sandbox: SandboxProcess, tmp_path: Path, unique: str
) -> None:
    """The process backend's own guarantee: the runner and its exit status outlive the
    launcher's process (here: a launcher in a child Python killed with SIGKILL)."""

    workdir = tmp_path / "runs"
    spec = deploy_spec(sandbox, app_copy(tmp_path), f"lt-{unique}")
    path = os.pathsep.join([str(REPO / "node_modules" / ".bin"), default_base_env()["PATH"]])
    script = (
        "import json, os, signal, sys\n"
        "from pathlib import Path\n"
        "from dispatcher.core.ports import RunSpec\n"
        "from dispatcher.launchers.process.launcher import ProcessLauncher\n"
        "from dispatcher.launchers.process.plan import default_base_env\n"
        "raw = json.loads(sys.stdin.read())\n"
        "spec = RunSpec(raw['id'], 1, Path(raw['build']), tuple(raw['args']), raw['env'],"
        " raw['secrets'])\n"
        "base = {**default_base_env(), 'PATH': raw['path']}\n"
        "handle = ProcessLauncher(Path(raw['workdir']), base_env=base).launch(spec)\n"
        "print(handle.ref, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    payload = {
        "id": spec.deployment_id,
        "build": str(spec.build_dir),
        "args": list(spec.args),
        "env": dict(spec.env),
        "secrets": dict(spec.secrets),
        "path": path,
        "workdir": str(workdir),
    }
    dispatcher = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert dispatcher.returncode == -9, dispatcher.stderr[-3000:]
    launcher = ProcessLauncher(workdir)
    handles = launcher.running()
    assert [h.ref for h in handles] == [dispatcher.stdout.strip()]
    lines = list(launcher.stream(handles[0]))
    events = events_of(lines)
    assert_complete(events, spec.deployment_id)
    assert events[-1].payload["outcome"] == "live", explain(launcher, handles[0], lines)
    assert launcher.wait(handles[0], 60) == Exit(0)
    launcher.remove(handles[0])
    assert launcher.running() == []


@pytest.mark.clis
@pytest.mark.postgres
def test_removing_a_running_attempt_kills_it(
    new_launcher: Factory, sandbox: SandboxProcess, tmp_path: Path, unique: str
) -> None:
    launcher = new_launcher()
    spec = deploy_spec(sandbox, app_copy(tmp_path), f"lt-{unique}")
    handle = launcher.launch(spec)
    stream = launcher.stream(handle)
    first = next(stream)
    parse_event(first)
    launcher.remove(handle)
    assert_removed(launcher, handle, spec)
    assert launcher.wait(handle, 10) == Exit(None, "lost")
    rest = list(stream)  # ends: the attempt is gone
    runner_support.CAPTURED.extend([first, *rest])


# ---- the process backend's process handling, with a stand-in runner (no sandbox) -------------


def stand_in(tmp_path: Path, script: str) -> tuple[ProcessLauncher, RunSpec]:
    """A ProcessLauncher whose "runner" is `sh -c script` (the runner's arguments follow as
    $1...), and a RunSpec for it."""
    launcher = ProcessLauncher(tmp_path / "runs", runner_argv=("/bin/sh", "-c", script, "sh"))
    spec = RunSpec(f"lt-{uuid.uuid4().hex[:12]}", 1, tmp_path, ("deploy",))
    return launcher, spec


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_terminate_kills_a_runner_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    script = 'trap "" TERM; sleep 300 & echo "$!"; wait'
    launcher, spec = stand_in(tmp_path, script)
    handle = launcher.launch(spec)
    child = int(next(launcher.stream(handle)))
    launcher.terminate(handle, grace_s=0.5)
    assert launcher.wait(handle, 0) == Exit(137, "killed")
    assert gone(child), "a child of the runner survived the SIGKILL of its group"
    launcher.remove(handle)
    assert launcher.running() == []


def test_what_a_runner_leaves_behind_is_killed_when_it_exits(tmp_path: Path) -> None:
    launcher, spec = stand_in(tmp_path, 'sleep 300 & echo "$!"; echo "partial line"; exit 3')
    handle = launcher.launch(spec)
    lines = list(launcher.stream(handle))
    assert lines[1:] == ["partial line"]
    assert launcher.wait(handle, 10) == Exit(3)
    assert gone(int(lines[0])), "a child of the exited runner still runs"
    launcher.remove(handle)


def test_a_missing_runner_program_ends_with_127(tmp_path: Path) -> None:
    launcher = ProcessLauncher(tmp_path / "runs", runner_argv=(str(tmp_path / "no-such"),))
    assert "not found" in (launcher.health() or "")
    spec = RunSpec(f"lt-{uuid.uuid4().hex[:12]}", 1, tmp_path, ("deploy",))
    handle = launcher.launch(spec)
    assert list(launcher.stream(handle)) == []
    assert launcher.wait(handle, 10) == Exit(127)
    assert "cannot start" in launcher.stderr_tail(handle)
    launcher.remove(handle)


def test_wait_times_out_while_the_runner_runs(tmp_path: Path) -> None:
    launcher, spec = stand_in(tmp_path, "exec sleep 300")
    handle = launcher.launch(spec)
    with pytest.raises(TimeoutError, match="still runs"):
        launcher.wait(handle, 0.2)
    launcher.terminate(handle, grace_s=10)  # sleep dies of SIGTERM
    assert launcher.wait(handle, 0) == Exit(143, "killed")
    launcher.remove(handle)
