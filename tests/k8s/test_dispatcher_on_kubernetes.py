"""The whole dispatcher on the Kubernetes launcher (issue 13, "Dispatcher chaos"): the embedded
dispatcher (`FORGE_LAUNCHER=kubernetes`, its kubeconfig naming the test API server) takes a
signed deploy; the fake cluster's pod fetches the build from the dispatcher's own bundle route
and runs the REAL runner against the sandbox.

Shown: a deploy ends `live` through a Job; and with the API server stopped mid-deploy (every
connection refused for several seconds, its open log follows cut) while the pod goes on, the
dispatcher waits it out — its log says "Kubernetes API server unavailable" then "available
again" — reads the rest of the runner's output once it answers, and the deploy ends `live`
on its first attempt with each runner event stored once and one of each resource.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.config import kube_config

from dispatcher import embedded
from dispatcher import settings as dispatcher_settings
from tests.dispatcher.conftest import RunningDispatcher, dispatcher_env
from tests.k8s.conftest import IMAGE, NAMESPACE, fake_image
from tests.k8s.fake_apiserver import Listener, make_app
from tests.k8s.fake_cluster import FakeCluster
from tests.support.sandbox import SandboxProcess, owned_by

pytestmark = [pytest.mark.clis, pytest.mark.postgres]

OUTAGE_S = 6.0  # how long the API server refuses every connection
SLOW_SCALE = 0.2  # Vercel's build takes about 24 s: the outage lands while the runner waits


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[FakeCluster, Listener]]:
    """The fake cluster behind a test API server that can be stopped and started again."""
    fake = FakeCluster(tmp_path / "cluster", {IMAGE: fake_image()})
    fake.start()
    listener = Listener(make_app(fake))
    listener.start()
    try:
        yield fake, listener
    finally:
        listener.stop()
        fake.stop()
    leaks = fake.loopback_violations()
    assert not leaks, "a pod reached beyond loopback:\n" + "\n".join(leaks[:20])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def k8s_dispatcher(
    api_server: tuple[FakeCluster, Listener],
    sandbox: SandboxProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningDispatcher]:
    """The embedded dispatcher on the Kubernetes launcher, configured as an operator would:
    FORGE_K8S_* and FORGE_BUNDLE_* variables and a kubeconfig (no in-cluster account here)."""
    _, listener = api_server
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": listener.url}}],
                "users": [{"name": "test", "user": {}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                "current-context": "test",
            }
        )
    )
    # KUBECONFIG, as the client read it at import (it reads the variable once, then)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    builds_root, state = tmp_path / "builds", tmp_path / "state"
    builds_root.mkdir()
    state.mkdir()
    port = free_port()  # the pods fetch their build from this dispatcher's bundle route
    environ = {
        **dispatcher_env(
            sandbox, builds_root, state, f"sqlite:///{state / 'dispatcher.db'}", "kubernetes"
        ),
        "FORGE_K8S_NAMESPACE": NAMESPACE,
        "FORGE_RUNNER_IMAGE": IMAGE,
        "FORGE_BUNDLE_BASE_URL": f"http://127.0.0.1:{port}",
        "FORGE_BUNDLE_SECRET": secrets.token_urlsafe(32),
    }
    settings = dispatcher_settings.load(environ)
    with embedded.running(settings, port=port) as (dispatcher, base):
        yield RunningDispatcher(
            base,
            settings.hook.secret,
            builds_root,
            dispatcher=dispatcher,
            settings=settings,
            launcher_kind="kubernetes",
            store_kind="sqlite",
        )


@pytest.fixture
def slow_sandbox(sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    sandbox.set_time_scale(SLOW_SCALE)
    try:
        yield sandbox
    finally:
        sandbox.set_time_scale(sandbox.time_scale)


def runner_seqs(e2e: RunningDispatcher, deployment_id: str) -> list[int]:
    return [e["seq"] for e in e2e.events_jsonl(deployment_id) if e["seq"] is not None]


def test_a_deploy_ends_live_through_the_dispatcher_on_kubernetes(
    k8s_dispatcher: RunningDispatcher,
    api_server: tuple[FakeCluster, Listener],
    sandbox: SandboxProcess,
    unique: str,
) -> None:
    fake, _ = api_server
    name = f"k8d-{unique}"
    done = k8s_dispatcher.wait_terminal(k8s_dispatcher.deploy(name)["id"], 300)
    assert done["status"] == "live", (done["error"], k8s_dispatcher.events_jsonl(done["id"])[-4:])
    seqs = runner_seqs(k8s_dispatcher, done["id"])
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 1, "vercel": 1, "deployments": 1}
    assert fake.started_processes == 2  # the build's fetch and the runner, once each


def test_an_api_server_outage_mid_deploy_is_waited_out_and_the_deploy_ends_live(
    k8s_dispatcher: RunningDispatcher,
    api_server: tuple[FakeCluster, Listener],
    slow_sandbox: SandboxProcess,
    caplog: pytest.LogCaptureFixture,
    unique: str,
) -> None:
    fake, listener = api_server
    e2e = k8s_dispatcher
    name = f"k8o-{unique}"
    dep = e2e.deploy(name)["id"]
    e2e.wait(dep, lambda d: d["step"] == "vercel.build", 180)
    with caplog.at_level(logging.WARNING, "forge.dispatcher.launcher"):
        fake.api_going_down.set()  # the open follows end, as a stopping server cuts them
        listener.stop()
        time.sleep(OUTAGE_S)  # the outage itself; nothing is timed
        fake.api_going_down.clear()
        listener.start()
        done = e2e.wait_terminal(dep, 300)
    assert (done["status"], done["attempt"]) == ("live", 1), done

    said = [r.getMessage() for r in caplog.records if r.name == "forge.dispatcher.launcher"]
    assert [m.split(":")[0].split(" after")[0] for m in said] == [
        "Kubernetes API server unavailable",
        "Kubernetes API server available again",
    ], said
    seqs = runner_seqs(e2e, dep)
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # each runner event once, none missing
    events = e2e.events_jsonl(dep)
    notes = [e["payload"] for e in events if e["type"] == "log" and e["seq"] is None]
    assert any(n.get("source") == "backend-outage" for n in notes), notes
    assert owned_by(slow_sandbox, name) == {
        "repos": 1,
        "supabase": 1,
        "vercel": 1,
        "deployments": 1,
    }
    assert fake.started_processes == 2  # the pod went on: nothing was started again
