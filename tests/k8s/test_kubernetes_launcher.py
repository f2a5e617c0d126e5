"""The Kubernetes launcher end to end, through the official client, against the test API server
(tests/k8s/fake_apiserver.py) whose pods run the REAL runner against the sandbox.

Each deploy: the launcher creates the Job then the Secret; the fake's kubelet waits for the
Secret, runs the init container's fetch script for real (it downloads the signed bundle from the
bundle server, i.e. `dispatcher.bundles.serve_bundle`, and unpacks it into the pod's `build`
volume), then `forge-runner deploy --build-dir /build` with the Secret's `secrets.env` as
FORGE_ENV_FILE; its stdout and stderr are the pod log, which `stream()` follows. The runner
never sees the original build directory.

Shown: a deploy ends live; terminate mid-deploy -> the runner gets SIGTERM, ends with a
cancelled eof, the Job and its Secret are gone; a deadline -> "deadline"; the runner killed
mid-run -> exit 137 "killed"; a new launcher instance (a restarted dispatcher) finds the attempt
with `running()` and streams it from its first event; an unknown image -> "image-pull-failed";
no token value in any Job or Pod the API server stored nor in any request body but the Secret's.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.core.ports import Exit, Handle, RunSpec
from dispatcher.core.secrets import split_env
from dispatcher.launchers.kubernetes.launcher import KubernetesLauncher
from runner.events import Event, EventType, parse_event
from tests.k8s.conftest import NAMESPACE, BundleServer, LauncherFactory
from tests.k8s.fake_cluster import FakeCluster
from tests.support import runner as runner_support
from tests.support.clis import REPO
from tests.support.sandbox import SandboxProcess

EXAMPLE = REPO / "examples" / "hello-app"

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def new_spec(
    sandbox: SandboxProcess,
    bundle_server: BundleServer,
    tmp_path: Path,
    *,
    deadline_s: float = 600,
) -> tuple[RunSpec, tuple[str, ...]]:
    """A deploy of a copy of examples/hello-app: its RunSpec and the files its settings name."""
    build = tmp_path / f"app-{uuid.uuid4().hex[:6]}"
    shutil.copytree(EXAMPLE, build)
    deployment_id = f"dep_{uuid.uuid4().hex[:24]}"
    plain, secret = split_env(runner_support.runner_env(sandbox))
    spec = RunSpec(
        deployment_id=deployment_id,
        attempt=1,
        build_dir=build,
        args=("deploy", "--name", f"k8s-{uuid.uuid4().hex[:8]}"),
        env=plain,
        secrets=secret,
        deadline_s=deadline_s,
    )
    bundle_server.builds[(deployment_id, 1)] = build
    return spec, (plain["FORGE_CA_FILE"], plain["SUPABASE_PROFILE"])


def events(lines: list[str]) -> list[Event]:
    return [parse_event(line) for line in lines]


def follow_until(
    launcher: KubernetesLauncher, handle: Handle, step: str
) -> tuple[list[str], Iterator[str]]:
    """Lines of the stream up to the start of `step`, and the stream to go on with."""
    stream = launcher.stream(handle)
    seen: list[str] = []
    for line in stream:
        seen.append(line)
        event = parse_event(line)
        if event.type is EventType.STEP_STARTED and event.payload["step"] == step:
            return seen, stream
    raise AssertionError(f"the stream ended before step {step} started: {seen[-5:]}")


def assert_no_token_in_specs(cluster: FakeCluster, spec: RunSpec) -> None:
    tokens = [v for v in spec.secrets.values() if len(v) >= 8]
    assert tokens
    for obj in cluster.objects():
        if obj["kind"] in ("Job", "Pod"):
            text = json.dumps(obj)
            assert not any(t in text for t in tokens), f"a token shows in {obj['kind']}"
    for method, path, body in cluster.requests:
        if "/secrets" not in path:
            assert not any(t in body for t in tokens), f"a token was sent in {method} {path}"


@pytest.fixture
def sandbox_settings(sandbox: SandboxProcess) -> Iterator[None]:
    yield
    sandbox.set_time_scale(sandbox.time_scale)


def test_a_deploy_ends_live_through_a_job(
    sandbox: SandboxProcess,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    launcher = new_launcher(files)
    handle = launcher.launch(spec)
    assert handle.ref == fake.list_jobs(NAMESPACE, None)[0]["metadata"]["name"]
    assert launcher.launch(spec) == handle  # a retried launch adopts what the first made
    lines = list(launcher.stream(handle))
    found = events(lines)
    assert found[-1].type is EventType.EOF, launcher.stderr_tail(handle)
    assert found[-1].payload == {"outcome": "live", "exit_code": 0}, launcher.stderr_tail(handle)
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    assert {e.deploy_id for e in found} == {spec.deployment_id}
    assert launcher.wait(handle, timeout_s=60) == Exit(0)
    assert bundle_server.served == [(spec.deployment_id, 1)]
    assert "fetch-build" not in launcher.stderr_tail(handle)
    assert launcher.running() == [handle]
    assert_no_token_in_specs(fake, spec)
    assert fake.started_processes == 2  # the fetch and the runner, once each
    launcher.remove(handle)
    assert launcher.running() == []
    assert not [o for o in fake.objects() if o["kind"] == "Secret"]


def test_terminate_sends_sigterm_and_deletes_the_job(
    sandbox: SandboxProcess,
    sandbox_settings: None,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    launcher = new_launcher(files)
    sandbox.set_time_scale(0.05)  # provisioning takes 4.5 s: the cancel lands while waiting
    handle = launcher.launch(spec)
    seen, stream = follow_until(launcher, handle, "supabase.healthy")
    stopper = threading.Thread(target=launcher.terminate, args=(handle, 10.0))
    stopper.start()
    rest = list(stream)
    stopper.join(timeout=120)
    assert not stopper.is_alive()
    found = events(seen + rest)
    last = [(e.type.value, e.payload) for e in found[-4:]]
    assert found[-1].payload == {"outcome": "cancelled", "exit_code": 4}, last
    assert found[-2].type is EventType.RESULT and found[-2].payload["outcome"] == "cancelled"
    ended = launcher.wait(handle, timeout_s=30)
    # The pod is deleted once its runner exited: its exit code shows only if a poll saw it
    # terminated in between (the eof above carries it in any case).
    assert ended.reason == "cancelled" and ended.code in (4, None)
    assert fake.list_jobs(NAMESPACE, None) == []
    assert fake.list_pods(NAMESPACE, None) == []
    assert launcher.running() == []
    _wait_for(lambda: not [o for o in fake.objects() if o["kind"] == "Secret"])
    assert_no_token_in_specs(fake, spec)


def test_a_deadline_is_reported_as_such(
    sandbox: SandboxProcess,
    sandbox_settings: None,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path, deadline_s=3)
    launcher = new_launcher(files)
    sandbox.set_time_scale(1.0)  # provisioning takes 90 s: the 3 s deadline passes first
    handle = launcher.launch(spec)
    list(launcher.stream(handle))
    ended = launcher.wait(handle, timeout_s=120)
    assert ended.reason == "deadline"
    job = fake.get_job(NAMESPACE, handle.ref)
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed[0]["reason"] == "DeadlineExceeded"
    launcher.remove(handle)


def test_a_pod_killed_mid_run_fails_with_137(
    sandbox: SandboxProcess,
    sandbox_settings: None,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    launcher = new_launcher(files)
    sandbox.set_time_scale(0.05)
    handle = launcher.launch(spec)
    seen, stream = follow_until(launcher, handle, "supabase.healthy")
    pod = fake.list_pods(NAMESPACE, None)[0]["metadata"]["name"]
    fake.kill(NAMESPACE, pod)  # SIGKILL to the container's processes
    rest = list(stream)
    found = events(seen + rest)
    assert all(e.type is not EventType.EOF for e in found)  # no eof: it died
    assert launcher.wait(handle, timeout_s=60) == Exit(137, "killed")
    job = fake.get_job(NAMESPACE, handle.ref)
    assert [c["reason"] for c in job["status"]["conditions"] if c["type"] == "Failed"] == [
        "BackoffLimitExceeded"
    ]
    launcher.remove(handle)


def test_a_restarted_dispatcher_reattaches_by_label(
    sandbox: SandboxProcess,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    first = new_launcher(files)
    handle = first.launch(spec)
    seen, _stream = follow_until(first, handle, "github.repo")
    del first, _stream  # the dispatcher died while the deploy ran
    second = new_launcher(files)
    assert second.running() == [handle]
    lines = list(second.stream(handle))
    assert lines[: len(seen)] == seen  # from the first event
    found = events(lines)
    assert found[0].seq == 1
    assert found[-1].payload == {"outcome": "live", "exit_code": 0}
    assert second.wait(handle, timeout_s=60) == Exit(0)
    assert fake.started_processes == 2
    second.remove(handle)


@pytest.mark.parametrize("log_stream", ["All", "Stdout"])
def test_a_broken_follow_is_reopened_without_losing_or_repeating_a_line(
    log_stream: str,
    sandbox: SandboxProcess,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    """The API server ends the follow twice mid-line while the runner runs; with the merged
    log (All) and with split streams (Stdout, the PodLogsQuerySplitStreams parameter)."""
    fake, _ = cluster
    fake.cut_follows.extend([5, 12])
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    launcher = new_launcher(files, log_stream=log_stream)
    handle = launcher.launch(spec)
    found = events(list(launcher.stream(handle)))
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    assert found[-1].payload == {"outcome": "live", "exit_code": 0}
    assert fake.cut_follows == []  # both cuts happened
    opened = [p for m, p, _ in fake.requests if p.endswith("/log")]
    assert len(opened) >= 3
    tail = launcher.stderr_tail(handle, lines=5)
    assert len(tail.splitlines()) == 5 and "INFO" in tail and not tail.startswith("{")
    launcher.remove(handle)


def test_an_unknown_image_is_reported_as_an_image_pull_error(
    sandbox: SandboxProcess,
    cluster: tuple[FakeCluster, str],
    bundle_server: BundleServer,
    new_launcher: LauncherFactory,
    tmp_path: Path,
) -> None:
    fake, _ = cluster
    spec, files = new_spec(sandbox, bundle_server, tmp_path)
    launcher = new_launcher(files, image="registry.invalid/forge-runner:missing", pull_grace_s=0)
    handle = launcher.launch(spec)
    assert list(launcher.stream(handle)) == []
    assert launcher.wait(handle, timeout_s=30) == Exit(None, "image-pull-failed")
    assert fake.started_processes == 0
    launcher.remove(handle)
    _wait_for(lambda: fake.list_pods(NAMESPACE, None) == [])


def _wait_for(check: object, attempts: int = 400) -> None:
    import time

    assert callable(check)
    for _ in range(attempts):
        if check():
            return
        time.sleep(0.025)
    raise AssertionError("the condition did not come true")


def test_an_api_server_that_does_not_answer_is_an_outage_the_attempt_waits_out(
    new_launcher: LauncherFactory,
) -> None:
    """The attempt waits out what `unavailable` names (as a Docker engine restart): no answer,
    a 5xx or a 429. A refusal or a missing object is a real error, raised at once."""
    from kubernetes.client.exceptions import ApiException

    from dispatcher.launchers.kubernetes.status import api_error

    launcher = new_launcher()
    refused = api_error(ConnectionRefusedError(111, "Connection refused"), "list the pods of j")
    assert launcher.unavailable(refused) == str(refused)
    assert "did not answer" in str(refused)
    assert launcher.unavailable(api_error(ApiException(status=503), "read Job j"))
    assert launcher.unavailable(api_error(ApiException(status=404), "read Job j")) is None
    assert launcher.unavailable(api_error(ApiException(status=403), "create Job j")) is None
    assert launcher.unavailable(ValueError("bad")) is None
    assert launcher.backend == "Kubernetes API server"
