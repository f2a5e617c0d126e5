"""The pure parts of the Kubernetes launcher: names, labels, the Job and Secret manifests, and
how a Job's conditions and its pod's state become an `Exit`. No I/O."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.core.ports import Exit, RunSpec
from dispatcher.launchers.common import format_env_file
from dispatcher.launchers.kubernetes import names as k8s_names
from dispatcher.launchers.kubernetes import spec as specs
from dispatcher.launchers.kubernetes.settings import (
    NAME_OK,
    JobSettings,
    Resources,
    job_settings_from_env,
)
from dispatcher.launchers.kubernetes.status import (
    PodView,
    api_error,
    complete_lines,
    exit_of,
    job_end,
    pod_view,
    stuck_exit,
)
from runner.checkpoints import SEALED_DB_PASSWORD, resume_text

SETTINGS = JobSettings(namespace="forge", image="forge-runner:1")
TOKEN = "ghp_" + "T0k3n" * 8


def spec_of(**changes: Any) -> RunSpec:
    base: dict[str, Any] = {
        "deployment_id": "dep_0123456789abcdef01234567",
        "attempt": 2,
        "build_dir": Path("/builds/shop"),
        "args": ("deploy", "--name", "shop"),
        "env": {"GH_ORG": "acme", "FORGE_SUPABASE_API_URL": "https://api.supabase.com"},
        "secrets": {"GH_TOKEN": TOKEN, "VERCEL_TOKEN": "vercel-secret-value"},
        "deadline_s": 900.2,
    }
    base.update(changes)
    return RunSpec(**base)


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def runner_of(job: dict[str, Any]) -> dict[str, Any]:
    (runner,) = pod_of(job)["containers"]
    assert runner["name"] == "runner"
    return dict(runner)


# ---- names and labels --------------------------------------------------------------------------


def test_a_plain_id_keeps_the_plain_name() -> None:
    assert k8s_names.job_name("d-123", 1) == "forge-deploy-d-123-1"
    assert k8s_names.job_name("d-123", 2) == "forge-deploy-d-123-2"


@pytest.mark.parametrize(
    "deployment_id",
    ["dep_0123456789abcdef01234567", "UPPER", "x" * 64, "a.b", "_", "-a-", "A" * 50 + "_b"],
)
def test_every_id_gives_a_valid_deterministic_name_of_at_most_63(deployment_id: str) -> None:
    names = {k8s_names.job_name(deployment_id, n) for n in (1, 2, 99999)}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63 and NAME_OK.match(name), name
        assert name.startswith("forge-deploy-")
    assert k8s_names.job_name(deployment_id, 7) == k8s_names.job_name(deployment_id, 7)


def test_ids_that_differ_only_by_case_or_cut_get_different_names() -> None:
    assert k8s_names.job_name("Shop", 1) != k8s_names.job_name("shop", 1)
    assert k8s_names.job_name("a_b", 1) != k8s_names.job_name("a-b", 1)
    assert k8s_names.job_name("x" * 64, 1) != k8s_names.job_name("x" * 63 + "y", 1)


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 65, "a b"])
def test_malformed_ids_and_attempts_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="deployment id"):
        k8s_names.job_name(bad, 1)
    with pytest.raises(ValueError, match="attempt"):
        k8s_names.job_name("ok", 0)


@pytest.mark.parametrize("value", ["d-1", "x" * 64, "_a", "a.", "dep_01", "Ünïcode"])
def test_label_values_are_valid_and_deterministic(value: str) -> None:
    label = k8s_names.label_value(value)
    assert len(label) <= 63 and k8s_names._LABEL_VALUE.match(label)
    assert label == k8s_names.label_value(value)
    if len(value) <= 63 and k8s_names._LABEL_VALUE.match(value):
        assert label == value


def test_handle_fields_read_our_jobs_and_nothing_else() -> None:
    job = specs.job_manifest(spec_of(deployment_id="_odd", attempt=3), SETTINGS)
    assert k8s_names.handle_fields(job["metadata"]) == ("_odd", 3)
    manual = specs.job_manifest(spec_of(), SETTINGS, managed=False)
    assert k8s_names.handle_fields(manual["metadata"]) is None
    forged = json.loads(json.dumps(job["metadata"]))
    forged["annotations"]["forge.deploy_id"] = "someone-else"
    assert k8s_names.handle_fields(forged) is None


# ---- the Job -----------------------------------------------------------------------------------


def test_the_job_is_one_hardened_pod_that_never_retries() -> None:
    job = specs.job_manifest(spec_of(), SETTINGS)
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 901  # rounded up
    assert job["spec"]["ttlSecondsAfterFinished"] == SETTINGS.ttl_after_finished_s
    pod = pod_of(job)
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["initContainers"] + pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert set(container["resources"]) == {"requests", "limits"}
    limits = runner_of(job)["resources"]["limits"]
    assert limits == {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "4Gi"}
    assert "serviceAccountName" not in pod
    with_sa = specs.job_manifest(
        spec_of(), JobSettings(namespace="forge", image="i", service_account="forge-runner")
    )
    assert pod_of(with_sa)["serviceAccountName"] == "forge-runner"


def test_labels_carry_the_deploy_and_the_attempt() -> None:
    job = specs.job_manifest(spec_of(), SETTINGS)
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert meta["labels"]["forge.deploy_id"] == "dep_0123456789abcdef01234567"
        assert meta["labels"]["forge.attempt"] == "2"
        assert meta["labels"]["forge.managed"] == "true"
        assert meta["labels"]["app.kubernetes.io/name"] == "forge-runner"
        assert meta["annotations"]["forge.deploy_id"] == "dep_0123456789abcdef01234567"
    assert job["metadata"]["namespace"] == "forge"


def test_the_build_comes_from_the_init_container_and_is_read_only_for_the_runner() -> None:
    job = specs.job_manifest(spec_of(), SETTINGS)
    pod = pod_of(job)
    (fetch,) = pod["initContainers"]
    assert fetch["image"] == SETTINGS.image
    assert fetch["command"][:3] == ["/opt/forge/venv/bin/python", "-I", "-c"]
    assert fetch["args"] == ["/run/forge/bundle/url", "/build", str(SETTINGS.bundle_max_bytes)]
    assert {"name": "build", "mountPath": "/build"} in fetch["volumeMounts"]
    assert {"name": "bundle", "mountPath": "/run/forge/bundle", "readOnly": True} in fetch[
        "volumeMounts"
    ]
    runner = runner_of(job)
    assert {"name": "build", "mountPath": "/build", "readOnly": True} in runner["volumeMounts"]
    assert not any(m["name"] == "bundle" for m in runner["volumeMounts"])  # the URL: fetch only
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["build"] == {"name": "build", "emptyDir": {"sizeLimit": "512Mi"}}
    assert volumes["bundle"]["secret"]["items"] == [{"key": "bundle-url", "path": "url"}]


def test_the_runner_reads_its_tokens_from_a_file_and_never_from_the_spec() -> None:
    spec = spec_of()
    job = specs.job_manifest(spec, SETTINGS)
    runner = runner_of(job)
    env = {e["name"]: e["value"] for e in runner["env"]}
    assert env["FORGE_ENV_FILE"] == "/run/forge/secrets/secrets.env"
    assert env["FORGE_DEPLOY_ID"] == spec.deployment_id
    assert env["GH_ORG"] == "acme"
    assert all(set(e) == {"name", "value"} for e in runner["env"])  # no valueFrom a Secret
    assert "GH_TOKEN" not in env
    text = json.dumps(job)
    assert TOKEN not in text and "vercel-secret-value" not in text
    assert runner["command"] == ["forge-runner"]
    assert runner["args"] == ["deploy", "--name", "shop", "--build-dir", "/build"]
    volumes = {v["name"]: v for v in pod_of(job)["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == k8s_names.job_name(spec.deployment_id, 2)
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GH_TOKEN": "x"}, "looks like a secret"),
        ({"MY_API_KEY": "x"}, "looks like a secret"),
        ({"FORGE_ENV_FILE": "/elsewhere"}, "set by the Job spec"),
        ({"1BAD": "x"}, "malformed"),
    ],
)
def test_secret_looking_or_fixed_env_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        specs.job_manifest(spec_of(env=env), SETTINGS)


def test_a_secret_value_hidden_in_a_plain_value_is_refused() -> None:
    with pytest.raises(ValueError, match="GH_TOKEN"):
        specs.job_manifest(spec_of(args=("deploy", "--name", TOKEN)), SETTINGS)


def test_resume_and_configuration_files_are_mounted_from_the_secret() -> None:
    spec = spec_of(resume_events="{}\n")
    job = specs.job_manifest(spec, SETTINGS, file_paths=["/etc/forge/ca.pem"])
    runner = runner_of(job)
    assert runner["args"][-2:] == ["--resume", "/run/forge/secrets/resume.jsonl"]
    key = specs.file_key("/etc/forge/ca.pem")
    assert key.endswith("-ca.pem")
    assert {
        "name": "secrets",
        "mountPath": "/etc/forge/ca.pem",
        "subPath": key,
        "readOnly": True,
    } in runner["volumeMounts"]
    items = {v["name"]: v for v in pod_of(job)["volumes"]}["secrets"]["secret"]["items"]
    assert [i["key"] for i in items] == ["secrets.env", "resume.jsonl", key]
    with pytest.raises(ValueError, match="read-only mount"):
        specs.job_manifest(spec, SETTINGS, file_paths=["/build/ca.pem"])
    with pytest.raises(ValueError, match="free absolute path"):
        specs.job_manifest(spec, SETTINGS, file_paths=["/tmp"])


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        JobSettings(namespace="Forge_NS", image="i")
    with pytest.raises(ValueError, match="quantity"):
        JobSettings(namespace="f", image="i", resources=Resources(memory_limit="2 gigs"))
    with pytest.raises(ValueError, match="pull policy"):
        JobSettings(namespace="f", image="i", image_pull_policy="Sometimes")
    with pytest.raises(ValueError, match="deadline"):
        specs.job_manifest(spec_of(deadline_s=0), SETTINGS)


# ---- the Secret --------------------------------------------------------------------------------


def test_the_secret_holds_only_this_attempts_values() -> None:
    spec = spec_of()
    secret = specs.secret_manifest(
        spec, SETTINGS, bundle_url="http://d:8080/v1/bundles/tok", owner_uid="uid-1"
    )
    assert secret["metadata"]["name"] == k8s_names.job_name(spec.deployment_id, spec.attempt)
    assert secret["immutable"] is True and secret["type"] == "Opaque"
    assert secret["stringData"] == {
        "secrets.env": format_env_file(spec.secrets),
        "bundle-url": "http://d:8080/v1/bundles/tok",
    }
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": secret["metadata"]["name"],
            "uid": "uid-1",
        }
    ]
    assert (
        "ownerReferences" not in specs.secret_manifest(spec, SETTINGS, bundle_url="u")["metadata"]
    )


def test_the_resume_checkpoints_travel_in_the_secret_unchanged() -> None:
    resume = resume_text("d", {"github.repo": "acme/shop", SEALED_DB_PASSWORD: "opaque"})
    secret = specs.secret_manifest(spec_of(resume_events=resume), SETTINGS, bundle_url="u")
    assert secret["stringData"]["resume.jsonl"] == resume
    assert (
        "resume.jsonl"
        not in specs.secret_manifest(spec_of(), SETTINGS, bundle_url="u")["stringData"]
    )


def test_binary_files_go_in_data_and_oversize_is_refused() -> None:
    secret = specs.secret_manifest(
        spec_of(), SETTINGS, bundle_url="u", files={"/etc/a.der": b"\x00\xff", "/etc/b": b"txt"}
    )
    key_a, key_b = specs.file_key("/etc/a.der"), specs.file_key("/etc/b")
    assert base64.b64decode(secret["data"][key_a]) == b"\x00\xff"
    assert secret["stringData"][key_b] == "txt"
    with pytest.raises(ValueError, match="1 MiB"):
        specs.secret_manifest(spec_of(), SETTINGS, bundle_url="u", files={"/big": b"x" * 2**20})


# ---- status ------------------------------------------------------------------------------------


def job_with(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [
                {"type": kind, "status": "True", "reason": reason} for kind, reason in conditions
            ]
        }
    }


def pod_with(
    runner: dict[str, Any] | None = None, init: dict[str, Any] | None = None, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "status": {
            "phase": status.pop("phase", "Running"),
            "initContainerStatuses": [{"name": "fetch-build", "state": init or {}}],
            "containerStatuses": [{"name": "runner", "state": runner or {}}],
            **status,
        },
    }


def terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason}}


@pytest.mark.parametrize(
    ("job", "pod", "expected"),
    [
        (
            job_with(("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "x")),
            pod_with(terminated(0, "Completed")),
            Exit(0),
        ),
        (job_with(("Failed", "DeadlineExceeded")), pod_with(terminated(4)), Exit(4, "deadline")),
        (job_with(("Failed", "DeadlineExceeded")), None, Exit(None, "deadline")),
        (
            job_with(("Failed", "BackoffLimitExceeded")),
            pod_with(terminated(137, "OOMKilled")),
            Exit(137, "oom-killed"),
        ),
        (
            job_with(("Failed", "BackoffLimitExceeded")),
            pod_with(terminated(137)),
            Exit(137, "killed"),
        ),
        (job_with(("Failed", "BackoffLimitExceeded")), pod_with(terminated(1)), Exit(1)),
        (job_with(("Failed", "BackoffLimitExceeded")), pod_with(terminated(3)), Exit(3)),
        (
            job_with(("Failed", "BackoffLimitExceeded")),
            pod_with({"waiting": {"reason": "PodInitializing"}}, terminated(1)),
            Exit(None, "bundle-fetch-failed"),
        ),
        (
            job_with(("Failed", "BackoffLimitExceeded")),
            pod_with({"running": {}}, reason="Evicted"),
            Exit(None, "evicted"),
        ),
        (
            job_with(("Failed", "BackoffLimitExceeded")),
            pod_with(terminated(137), reason="Evicted"),
            Exit(137, "evicted"),
        ),
        (job_with(("Failed", "BackoffLimitExceeded")), None, Exit(None, "lost")),
        (job_with(("FailureTarget", "BackoffLimitExceeded")), pod_with(terminated(1)), None),
        (job_with(), pod_with({"running": {}}), None),
        (None, None, Exit(None, "lost")),
    ],
)
def test_exit_from_job_conditions_and_pod_state(
    job: dict[str, Any] | None, pod: dict[str, Any] | None, expected: Exit | None
) -> None:
    view = pod_view(pod) if pod is not None else None
    assert exit_of(job, view) == expected


def test_after_terminate_a_gone_or_failed_job_is_cancelled() -> None:
    assert exit_of(None, None, cancelled=True, last_code=4) == Exit(4, "cancelled")
    failed = job_with(("Failed", "BackoffLimitExceeded"))
    assert exit_of(failed, pod_view(pod_with(terminated(143))), cancelled=True) == Exit(
        143, "cancelled"
    )


def test_pod_view_and_job_end() -> None:
    view = pod_view(pod_with({"running": {"startedAt": "t"}}))
    assert view == PodView("p", "Running", True, None, None, False, None, None)
    pulling = pod_view(pod_with({"waiting": {"reason": "ImagePullBackOff", "message": "m"}}))
    assert pulling.waiting == ("ImagePullBackOff", "m") and not pulling.runner_started
    assert job_end(job_with(("Complete", "r"))) == ("Complete", "r")
    assert job_end({"status": {}}) is None


def test_stuck_pods_end_after_the_grace_or_at_once_when_fatal() -> None:
    assert stuck_exit(None, None, 100.0, 10) is None
    assert stuck_exit(("ErrImagePull", ""), 95.0, 100.0, 10) is None
    assert stuck_exit(("ImagePullBackOff", ""), 90.0, 100.0, 10) == Exit(None, "image-pull-failed")
    assert stuck_exit(("InvalidImageName", ""), None, 0, 10) == Exit(None, "image-pull-failed")
    assert stuck_exit(("CreateContainerConfigError", ""), None, 0, 10) == Exit(
        None, "container-config-error"
    )


def test_complete_lines_keeps_the_unfinished_rest() -> None:
    assert complete_lines(b"a\nb\nc") == (["a", "b"], b"c")
    assert complete_lines(b"a\n") == (["a"], b"")
    assert complete_lines(b"\xff\n") == (["\ufffd"], b"")


def test_api_errors_map_to_one_tree() -> None:
    from kubernetes.client.exceptions import ApiException

    from dispatcher.launchers.kubernetes.status import (
        KubernetesDenied,
        KubernetesError,
        KubernetesUnavailable,
    )

    denied = ApiException(status=403, reason="Forbidden")
    denied.body = json.dumps({"message": 'jobs.batch is forbidden: User "x" cannot create'})
    error = api_error(denied, "create Job j")
    assert isinstance(error, KubernetesDenied) and "cannot create" in str(error)
    assert "k8s/rbac.yaml" in str(error)
    assert isinstance(api_error(ApiException(status=503), "x"), KubernetesUnavailable)
    assert isinstance(api_error(ApiException(status=429), "x"), KubernetesUnavailable)
    conflict = api_error(ApiException(status=409), "x")
    assert type(conflict) is KubernetesError and conflict.status == 409
    assert isinstance(api_error(ConnectionRefusedError(), "x"), KubernetesUnavailable)


# ---- settings from the environment -------------------------------------------------------------


def test_job_settings_from_the_environment() -> None:
    env = {
        "FORGE_K8S_NAMESPACE": "forge",
        "FORGE_K8S_SERVICE_ACCOUNT": "forge-runner",
        "FORGE_K8S_MEMORY_LIMIT": "3Gi",
        "FORGE_K8S_TTL_S": "600",
    }
    settings = job_settings_from_env(env, "img:1", 20)
    assert (settings.namespace, settings.image, settings.grace_s) == ("forge", "img:1", 20)
    assert settings.service_account == "forge-runner" and settings.ttl_after_finished_s == 600
    assert settings.resources.memory_limit == "3Gi" and settings.resources.cpu_limit == "1"
    with pytest.raises(ValueError, match="FORGE_K8S_NAMESPACE is not set"):
        job_settings_from_env({}, "img", 20)
    with pytest.raises(ValueError, match="FORGE_K8S_CPU_LIMIT is malformed"):
        job_settings_from_env({**env, "FORGE_K8S_CPU_LIMIT": "lots"}, "img", 20)
    with pytest.raises(ValueError, match="FORGE_K8S_TTL_S is malformed"):
        job_settings_from_env({**env, "FORGE_K8S_TTL_S": "-1"}, "img", 20)
    with pytest.raises(ValueError, match="FORGE_K8S_"):
        job_settings_from_env({**env, "FORGE_K8S_NAMESPACE": "No_Good"}, "img", 20)


def test_the_kubernetes_settings_are_read_once_at_start(tmp_path: Path) -> None:
    from kubernetes import client as k8s

    from dispatcher import settings as dispatcher_settings
    from dispatcher.launchers.kubernetes.launcher import KubernetesLauncher

    env = {
        "FORGE_HOOK_SECRET": "a-hook-secret-of-32-characters!!",
        "FORGE_BUILDS_ROOT": str(tmp_path),
        "FORGE_STATE_DIR": str(tmp_path / "state"),
        "FORGE_LAUNCHER": "kubernetes",
        "FORGE_CANCEL_GRACE_S": "19.5",
        "FORGE_K8S_NAMESPACE": "forge",
        "FORGE_BUNDLE_BASE_URL": "http://forge-dispatcher:8080",
        "FORGE_BUNDLE_SECRET": "s" * 32,
        "FORGE_K8S_LOG_STREAM": "Stdout",
    }
    settings = dispatcher_settings.load(env)
    assert settings.launcher.kubernetes is not None
    assert (
        settings.launcher.kubernetes.job.grace_s == 20
        and settings.launcher.kubernetes.log_stream == "Stdout"
    )
    assert "s" * 32 not in repr(settings.launcher.kubernetes)
    for variable, value in [
        ("FORGE_BUNDLE_SECRET", "short"),
        ("FORGE_BUNDLE_BASE_URL", "forge-dispatcher:8080"),
        ("FORGE_K8S_LOG_STREAM", "Stderr"),
        ("FORGE_BUNDLE_TTL_S", "soon"),
        ("FORGE_K8S_NAMESPACE", ""),
    ]:
        with pytest.raises(dispatcher_settings.ConfigError, match=variable):
            dispatcher_settings.load({**env, variable: value})
    process = dispatcher_settings.load({**env, "FORGE_LAUNCHER": "process"})
    assert process.launcher.kubernetes is None  # FORGE_K8S_* are not read for another launcher
    client = k8s.ApiClient(k8s.Configuration(host="http://127.0.0.1:9"))
    try:
        launcher = KubernetesLauncher(client, settings.launcher.kubernetes)
        assert launcher.settings.grace_s == 20 and launcher.log_stream == "Stdout"
        assert launcher.bundle_base_url == "http://forge-dispatcher:8080"
        assert launcher.health() is not None  # nothing answers on port 9: said, not raised
    finally:
        client.close()
