"""The Kubernetes launcher's API calls against the test API server, without running a deploy:
the image is one the fake kubelet cannot pull, so no container starts and the pod waits.

Shown: launch creates the Job, then the Secret owned by it (the tokens in `secrets.env`, a signed
bundle URL for this attempt); a second launch adopts both; a Secret left by an older Job of the
same name is replaced; a Job of that name that belongs to another deploy is refused; `running`
sees only Jobs the dispatcher made (not a hand-launched `render-job`); `terminate` on a pod that
never started; `remove` twice."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from dispatcher import bundles, render
from dispatcher.core.ports import Exit, Handle, RunSpec
from dispatcher.launchers.kubernetes import names as k8s_names
from dispatcher.launchers.kubernetes import spec as k8s_specs
from dispatcher.launchers.kubernetes.settings import JobSettings
from dispatcher.launchers.kubernetes.status import KubernetesConflict
from tests.k8s.conftest import NAMESPACE, BundleServer, LauncherFactory
from tests.k8s.fake_cluster import FakeCluster

MISSING_IMAGE = "registry.invalid/forge-runner:none"
TOKENS = {"GH_TOKEN": "ghp_" + "x" * 36, "VERCEL_TOKEN": "vercel-token-value-1"}


def spec_of(deployment_id: str = "dep_00000000000000000000abcd", attempt: int = 1) -> RunSpec:
    return RunSpec(
        deployment_id=deployment_id,
        attempt=attempt,
        build_dir=Path("/builds/app"),
        args=("deploy", "--name", "app"),
        env={"GH_ORG": "acme"},
        secrets=TOKENS,
        deadline_s=600,
    )


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_launch_makes_the_job_then_its_secret_and_adopts_them_again(
    cluster: tuple[FakeCluster, str], bundle_server: BundleServer, new_launcher: LauncherFactory
) -> None:
    fake, _ = cluster
    launcher = new_launcher(image=MISSING_IMAGE, clock=lambda: 1000.0, bundle_ttl_s=300)
    spec = spec_of()
    handle = launcher.launch(spec)
    name = k8s_names.job_name(spec.deployment_id, 1)
    assert handle == Handle("kubernetes", spec.deployment_id, 1, name)
    posts = [p for m, p, _ in fake.requests if m == "POST"]
    assert posts == [
        f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
    ]
    job, secret = fake.get_job(NAMESPACE, name), fake.get_secret(NAMESPACE, name)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    values = secret_values(secret)
    env_file = Path(fake.workdir) / "secrets.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(values["secrets.env"])
    assert dotenv_values(env_file, interpolate=False) == TOKENS  # what the runner will read
    token = values["bundle-url"].removeprefix(f"{bundle_server.url}/v1/bundles/")
    grant = bundles.check_token(bundle_server.secret, token, now=1000.0)
    assert grant == bundles.BundleGrant(spec.deployment_id, 1, 1300)
    assert json.dumps(job).count("ghp_") == 0

    assert launcher.launch(spec) == handle
    assert len(fake.list_jobs(NAMESPACE, None)) == 1
    assert len([o for o in fake.objects() if o["kind"] == "Secret"]) == 1
    assert launcher.running() == [handle]
    launcher.remove(handle)
    launcher.remove(handle)  # gone already is fine
    assert launcher.running() == []


def test_a_secret_left_by_an_older_job_of_that_name_is_replaced(
    cluster: tuple[FakeCluster, str], new_launcher: LauncherFactory
) -> None:
    fake, _ = cluster
    spec = spec_of()
    stale = k8s_specs.secret_manifest(
        spec,
        JobSettings(namespace=NAMESPACE, image="i"),
        bundle_url="http://old/v1/bundles/x",
        owner_uid="gone-uid",
    )
    fake.create_secret(NAMESPACE, stale)
    launcher = new_launcher(image=MISSING_IMAGE)
    handle = launcher.launch(spec)
    job, secret = fake.get_job(NAMESPACE, handle.ref), fake.get_secret(NAMESPACE, handle.ref)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert secret_values(secret)["bundle-url"] != "http://old/v1/bundles/x"
    launcher.remove(handle)


def test_a_job_of_that_name_from_another_deploy_is_refused(
    cluster: tuple[FakeCluster, str], new_launcher: LauncherFactory
) -> None:
    fake, _ = cluster
    spec = spec_of()
    foreign = k8s_specs.job_manifest(spec, JobSettings(namespace=NAMESPACE, image=MISSING_IMAGE))
    foreign["metadata"]["annotations"]["forge.deploy_id"] = "someone-else"
    fake.create_job(NAMESPACE, foreign)
    launcher = new_launcher(image=MISSING_IMAGE)
    with pytest.raises(KubernetesConflict, match="refusing to adopt"):
        launcher.launch(spec)
    assert launcher.running() == []  # not ours either


def test_running_ignores_a_hand_launched_job(
    cluster: tuple[FakeCluster, str], new_launcher: LauncherFactory
) -> None:
    fake, _ = cluster
    settings = JobSettings(namespace=NAMESPACE, image=MISSING_IMAGE)
    secret, job = yaml.safe_load_all(render.render_job(spec_of("manual-1"), settings))
    fake.create_secret(NAMESPACE, secret)
    fake.create_job(NAMESPACE, job)
    launcher = new_launcher(image=MISSING_IMAGE)
    mine = launcher.launch(spec_of("dep_2"))
    assert launcher.running() == [mine]
    launcher.remove(mine)


def test_terminate_a_pod_that_never_started(
    cluster: tuple[FakeCluster, str], new_launcher: LauncherFactory
) -> None:
    fake, _ = cluster
    launcher = new_launcher(image=MISSING_IMAGE)
    handle = launcher.launch(spec_of())
    launcher.terminate(handle, grace_s=5)
    assert fake.list_pods(NAMESPACE, None) == []
    assert fake.list_jobs(NAMESPACE, None) == []
    assert launcher.wait(handle, timeout_s=5) == Exit(None, "cancelled")
    assert list(launcher.stream(handle)) == []
    assert launcher.stderr_tail(handle) == ""
    assert launcher.health() is None


def test_a_bundle_the_dispatcher_refuses_fails_the_init_container(
    cluster: tuple[FakeCluster, str], bundle_server: BundleServer, new_launcher: LauncherFactory
) -> None:
    """The build is unknown to the bundle route (404): the real fetch script exits 1, the
    runner never starts, and the reason and the init container's log say so."""
    fake, _ = cluster
    launcher = new_launcher()
    spec = spec_of("dep_unknown_build")
    handle = launcher.launch(spec)
    assert list(launcher.stream(handle)) == []
    assert launcher.wait(handle, timeout_s=30) == Exit(None, "bundle-fetch-failed")
    assert bundle_server.served == [(spec.deployment_id, 1)]
    assert "the dispatcher refused the bundle: HTTP 404" in launcher.stderr_tail(handle)
    assert "/v1/bundles/" not in launcher.stderr_tail(handle)  # the token is never printed
    assert fake.started_processes == 1
    launcher.remove(handle)
