"""Fixtures of the Kubernetes launcher's tests: the fake cluster behind the test API server, the
bundle server (the dispatcher's `GET /v1/bundles/{token}`, served by `bundles.serve_bundle`),
and launcher instances talking to them through the official client.

The fake image maps the Job's commands onto this machine: `forge-runner` is
`python -m runner.cli`, the image's Python (`/opt/forge/venv/bin/python`, which runs the
init container's fetch script) is this interpreter; its environment is the runner image's
(images/runner/Dockerfile), with the host's PATH plus the repository's node_modules/.bin.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dispatcher import bundles
from dispatcher.launchers.kubernetes.launcher import KubernetesLauncher
from dispatcher.launchers.kubernetes.settings import JobSettings, KubernetesSettings
from tests.k8s.fake_apiserver import make_app, serve
from tests.k8s.fake_cluster import FakeCluster, FakeImage
from tests.support.clis import REPO

IMAGE = "forge-runner:test"
NAMESPACE = "forge"


def fake_image() -> FakeImage:
    path = os.pathsep.join(
        [str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent), os.environ["PATH"]]
    )
    env = {
        "LANG": "C.UTF-8",
        "HOME": "/home/forge",
        "FORGE_WORK_DIR": "/work",
        "TMPDIR": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "GH_NO_UPDATE_NOTIFIER": "1",
        "GH_PROMPT_DISABLED": "1",
        "SUPABASE_TELEMETRY_DISABLED": "1",
        "VERCEL_TELEMETRY_DISABLED": "1",
        "NO_UPDATE_NOTIFIER": "1",
        "DO_NOT_TRACK": "1",
    }
    commands = {
        "forge-runner": [sys.executable, "-m", "runner.cli"],
        "/opt/forge/venv/bin/python": [sys.executable],
    }
    # the runner of this checkout, not whichever one the venv's editable install points at
    host_env = {"PATH": path, "PYTHONPATH": str(REPO)}
    return FakeImage(commands=commands, env=env, host_env=host_env)


@dataclass
class BundleServer:
    url: str
    secret: bytes
    builds: dict[tuple[str, int], Path] = field(default_factory=dict)
    served: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def bundle_server() -> Iterator[BundleServer]:
    """The dispatcher's bundle route, as the lead mounts it: `serve_bundle` behind
    `GET /v1/bundles/{token}`; builds are registered per (deployment, attempt)."""
    holder: dict[str, BundleServer] = {}

    def lookup(deployment_id: str, attempt: int) -> Path | None:
        server = holder["server"]
        with server.lock:
            server.served.append((deployment_id, attempt))
            return server.builds.get((deployment_id, attempt))

    def get_bundle(request: Request) -> Response:
        import time

        server = holder["server"]
        try:
            body = bundles.serve_bundle(
                request.path_params["token"],
                secret=server.secret,
                build_dir_of=lookup,
                now=time.time(),
            )
        except bundles.BundleError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        return Response(body, media_type="application/gzip", headers={"Cache-Control": "no-store"})

    app = Starlette(routes=[Route("/v1/bundles/{token}", get_bundle, methods=["GET"])])
    with serve(app) as url:
        holder["server"] = BundleServer(url, secrets.token_bytes(32))
        yield holder["server"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeCluster, str]]:
    """The fake cluster and the test API server's URL; every process it ran was audited."""
    fake = FakeCluster(tmp_path / "cluster", {IMAGE: fake_image()})
    fake.start()
    try:
        with serve(make_app(fake)) as url:
            yield fake, url
    finally:
        fake.stop()
    leaks = fake.loopback_violations()
    assert not leaks, "a pod reached beyond loopback:\n" + "\n".join(leaks[:20])


def api_client(url: str) -> k8s.ApiClient:
    configuration = k8s.Configuration(host=url)
    return k8s.ApiClient(configuration)


LauncherFactory = Callable[..., KubernetesLauncher]


@pytest.fixture
def new_launcher(
    cluster: tuple[FakeCluster, str], bundle_server: BundleServer
) -> Iterator[LauncherFactory]:
    """Launcher instances on the fake cluster, each with its own API client (a new one is a
    restarted dispatcher); fast polling; the sandbox's CA and profile travel in the Secret."""
    _, url = cluster
    clients: list[k8s.ApiClient] = []

    def make(files: tuple[str, ...] = (), image: str = IMAGE, **kwargs: Any) -> KubernetesLauncher:
        client = api_client(url)
        clients.append(client)
        config = {
            k: kwargs.pop(k) for k in ("log_stream", "pull_grace_s", "bundle_ttl_s") if k in kwargs
        }
        settings = KubernetesSettings(
            job=JobSettings(namespace=NAMESPACE, image=image, grace_s=10),
            bundle_base_url=bundle_server.url,
            bundle_secret=bundle_server.secret,
            **config,
        )
        options: dict[str, Any] = {"poll_s": 0.05, "read_only_files": files, **kwargs}
        return KubernetesLauncher(client, settings, **options)

    yield make
    for client in clients:
        client.close()
