"""One deploy attempt as Kubernetes objects: a Job and its Secret, built by pure functions.

`job_manifest(spec, settings)` and `secret_manifest(spec, settings, ...)` return plain dicts in
the API's own shape (camelCase, what `kubectl get -o json` shows), which the launcher sends as
they are and the tests validate against the Kubernetes schemas.

The Job (`forge-deploy-<id>-<attempt>`, at most 63 characters, hash-shortened when needed):
- `backoffLimit: 0` (a retry is the dispatcher's decision, with a new attempt number),
  `activeDeadlineSeconds` from the deploy's deadline, `ttlSecondsAfterFinished`, one pod with
  `restartPolicy: Never`, no service-account token, no service links;
- pod and containers run as uid 10001 (the image's user), non-root, read-only root filesystem,
  every capability dropped, no privilege escalation, seccomp `RuntimeDefault`; requests and
  limits on CPU, memory and ephemeral storage; emptyDirs with size limits for /tmp, /work and
  the home directory;
- the build directory reaches the pod without a shared path: the init container `fetch-build`
  (same image, its Python, `bundles.FETCH_SCRIPT`) reads a signed bundle URL from the Secret,
  downloads the bundle from the dispatcher (`bundles.serve_bundle`) and unpacks it into the
  `build` emptyDir, which the `runner` container mounts read-only at /build;
- `forge-runner <args> --build-dir /build [--resume ...]`, environment = `RunSpec.env` plus
  `FORGE_DEPLOY_ID` and `FORGE_ENV_FILE` (a path: the tokens are in the file, never in the spec).

The Secret (same name) holds only this attempt's values, mounted as files: `secrets.env`
(`RunSpec.secrets` as `KEY='value'` lines), `bundle-url` (seen only by the init container),
`resume.jsonl` (the checkpoints of earlier attempts, when resuming: they carry the sealed
database password, and a Secret is the one object kind the dispatcher's Role may write besides
Jobs) and the files the configuration names (`FORGE_CA_FILE`, ...), each mounted read-only at its
own path. The launcher gives it an owner reference to its Job, so deleting the Job deletes it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.bundles import FETCH_SCRIPT
from dispatcher.container import (
    BUILD_MOUNT,
    HOME_DIR,
    LABEL_ATTEMPT,
    LABEL_DEPLOY_ID,
    RUNNER_GID,
    RUNNER_UID,
    WORK_DIR,
    format_env_file,
    is_secret_name,
)
from dispatcher.launchers.base import RunSpec
from dispatcher.launchers.k8s_settings import MAX_NAME, NAME_OK, JobSettings
from dispatcher.launchers.specs import (
    LABEL_MANAGED,
    refuse_secret_values,
    runner_command,
)

RUNNER_CONTAINER = "runner"
FETCH_CONTAINER = "fetch-build"
SECRETS_DIR = "/run/forge/secrets"
SECRETS_FILE = f"{SECRETS_DIR}/secrets.env"
RESUME_FILE = f"{SECRETS_DIR}/resume.jsonl"
BUNDLE_DIR = "/run/forge/bundle"
BUNDLE_URL_FILE = f"{BUNDLE_DIR}/url"
KEY_ENV = "secrets.env"
KEY_RESUME = "resume.jsonl"
KEY_BUNDLE = "bundle-url"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
APP_NAME = "forge-runner"  # the NetworkPolicy in k8s/ selects runner pods by this
MANAGED_BY = "forge-dispatcher"
MANAGED_SELECTOR = f"{LABEL_MANAGED}=true,{LABEL_MANAGED_BY}={MANAGED_BY}"

MAX_SECRET_BYTES = 1024 * 1024  # the API server's limit for one Secret
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DEPLOY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIXED_ENV = ("FORGE_DEPLOY_ID", "FORGE_ENV_FILE")


# ---- names and labels --------------------------------------------------------------------------


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def check_ids(deployment_id: str, attempt: int) -> None:
    if not _DEPLOY_ID.match(deployment_id):
        raise ValueError(f"deployment id {deployment_id!r} is malformed: 1-64 of A-Za-z0-9_.-")
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt}")


def job_name(deployment_id: str, attempt: int) -> str:
    """`forge-deploy-<id>-<attempt>` when that is a valid name of at most 63 characters; else
    `forge-deploy-<lowercased, cut id>-<10 hex of sha256(id)>-<attempt>`: deterministic, distinct
    per attempt, and two ids that only differ by case or cut never share a name."""
    check_ids(deployment_id, attempt)
    plain = f"forge-deploy-{deployment_id}-{attempt}"
    if NAME_OK.match(plain) and len(plain) <= MAX_NAME:
        return plain
    slug = re.sub(r"[^a-z0-9-]+", "-", deployment_id.lower()).strip("-")
    tail = f"-{_digest(deployment_id)}-{attempt}"
    room = MAX_NAME - len("forge-deploy-") - len(tail)
    slug = slug[:room].rstrip("-")
    return f"forge-deploy-{slug}{tail}" if slug else f"forge-deploy{tail}"


def label_value(value: str) -> str:
    """`value` when it is a valid label value (63 characters, alphanumeric ends); else a cut,
    hash-suffixed form. The exact value is kept in an annotation."""
    if len(value) <= MAX_NAME and _LABEL_VALUE.match(value):
        return value
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value).strip("-_.")
    tail = f"-{_digest(value)}"
    cut = cleaned[: MAX_NAME - len(tail)].rstrip("-_.")
    return f"{cut}{tail}" if cut else tail.lstrip("-")


def labels(deployment_id: str, attempt: int, *, managed: bool = True) -> dict[str, str]:
    found = {
        LABEL_NAME: APP_NAME,
        LABEL_COMPONENT: "deploy",
        LABEL_DEPLOY_ID: label_value(deployment_id),
        LABEL_ATTEMPT: str(attempt),
    }
    if managed:
        found[LABEL_MANAGED_BY] = MANAGED_BY
        found[LABEL_MANAGED] = "true"
    else:
        found[LABEL_MANAGED_BY] = "kubectl"
    return found


def attempt_annotations(deployment_id: str, attempt: int) -> dict[str, str]:
    return {LABEL_DEPLOY_ID: deployment_id, LABEL_ATTEMPT: str(attempt)}


def attempt_selector(deployment_id: str, attempt: int) -> str:
    """The label selector of one attempt's Job (and its pod)."""
    return (
        f"{MANAGED_SELECTOR},{LABEL_DEPLOY_ID}={label_value(deployment_id)},"
        f"{LABEL_ATTEMPT}={attempt}"
    )


def handle_fields(meta: Mapping[str, Any]) -> tuple[str, int] | None:
    """(deployment id, attempt) of a Job's metadata; None when it is not one of ours."""
    found_labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    if found_labels.get(LABEL_MANAGED) != "true":
        return None
    deployment_id, attempt = notes.get(LABEL_DEPLOY_ID), notes.get(LABEL_ATTEMPT)
    try:
        number = int(str(attempt))
        check_ids(str(deployment_id), number)
    except ValueError:
        return None
    if found_labels.get(LABEL_DEPLOY_ID) != label_value(str(deployment_id)):
        return None
    return str(deployment_id), number


def file_key(path: str) -> str:
    """The Secret key of a configuration file mounted at `path` (e.g. the CA file):
    `file-<12 hex of sha256(path)>-<its base name>`, so the key keeps the file's suffix."""
    base = re.sub(r"[^-._a-zA-Z0-9]", "_", path.rsplit("/", 1)[-1])[-100:]
    return f"file-{_digest(path, 12)}-{base}"


# ---- the Secret --------------------------------------------------------------------------------


def secret_manifest(
    spec: RunSpec,
    settings: JobSettings,
    *,
    bundle_url: str,
    files: Mapping[str, bytes] | None = None,
    owner_uid: str | None = None,
    managed: bool = True,
) -> dict[str, Any]:
    """The attempt's Secret: `secrets.env`, `bundle-url`, `resume.jsonl` (when resuming) and
    the configuration files (`files`: path in the pod -> content). `owner_uid`: the Job's uid,
    for the owner reference (deleting the Job deletes the Secret)."""
    name = job_name(spec.deployment_id, spec.attempt)
    data: dict[str, str] = {KEY_ENV: format_env_file(spec.secrets), KEY_BUNDLE: bundle_url}
    if spec.resume_events is not None:
        data[KEY_RESUME] = spec.resume_events
    binary: dict[str, str] = {}
    for path, content in (files or {}).items():
        try:
            data[file_key(path)] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[file_key(path)] = base64.b64encode(content).decode("ascii")
    size = sum(len(v.encode()) for v in data.values()) + sum(len(v) for v in binary.values())
    if size > MAX_SECRET_BYTES - 4096:
        raise ValueError(
            f"the Secret of {name} would hold {size} bytes, over the API server's 1 MiB limit"
            " (large resume checkpoints or configuration files)"
        )
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": settings.namespace,
        "labels": labels(spec.deployment_id, spec.attempt, managed=managed),
        "annotations": attempt_annotations(spec.deployment_id, spec.attempt),
    }
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": owner_uid}
        ]
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "immutable": True,
        "stringData": data,
    }
    if binary:
        manifest["data"] = binary
    return manifest


# ---- the Job -----------------------------------------------------------------------------------


def _check_env(spec: RunSpec) -> dict[str, str]:
    fixed = {"FORGE_DEPLOY_ID": spec.deployment_id, "FORGE_ENV_FILE": SECRETS_FILE}
    env: dict[str, str] = {}
    for key, value in spec.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"environment name {key!r} is malformed")
        if is_secret_name(key):
            raise ValueError(f"{key} looks like a secret: put it in RunSpec.secrets, not env")
        if key in fixed and value != fixed[key]:
            raise ValueError(f"{key} is set by the Job spec to {fixed[key]!r}, got {value!r}")
        env[key] = value
    for key in spec.secrets:
        if not _ENV_NAME.match(key):
            raise ValueError(f"secret name {key!r} is malformed")
    return {**env, **fixed}


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_GID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _empty_dir(name: str, size: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def job_manifest(
    spec: RunSpec,
    settings: JobSettings,
    *,
    file_paths: Sequence[str] = (),
    managed: bool = True,
) -> dict[str, Any]:
    """The attempt's Job (see the module's docstring). `file_paths`: configuration files the
    Secret carries (`secret_manifest(files=...)`), each mounted read-only at its own path."""
    check_ids(spec.deployment_id, spec.attempt)
    if spec.deadline_s <= 0:
        raise ValueError(f"deadline_s must be positive, got {spec.deadline_s}")
    name = job_name(spec.deployment_id, spec.attempt)
    env = _check_env(spec)
    resume = spec.resume_events is not None
    command = runner_command(spec, BUILD_MOUNT, RESUME_FILE if resume else None)
    res = settings.resources
    secret_items = [{"key": KEY_ENV, "path": KEY_ENV}]
    if resume:
        secret_items.append({"key": KEY_RESUME, "path": KEY_RESUME})
    mounts: list[dict[str, Any]] = [
        {"name": "build", "mountPath": BUILD_MOUNT, "readOnly": True},
        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - in the container
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "home", "mountPath": HOME_DIR},
    ]
    taken = {m["mountPath"] for m in mounts}
    read_only = (BUILD_MOUNT, SECRETS_DIR, BUNDLE_DIR)  # no mount point can be made inside
    for path in file_paths:
        if not path.startswith("/") or path in taken:
            raise ValueError(f"configuration file {path!r}: expected a free absolute path")
        if any(path.startswith(f"{t}/") for t in read_only):
            raise ValueError(f"configuration file {path!r} would be inside a read-only mount")
        taken.add(path)
        key = file_key(path)
        secret_items.append({"key": key, "path": key})
        mounts.append({"name": "secrets", "mountPath": path, "subPath": key, "readOnly": True})
    runner = {
        "name": RUNNER_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["forge-runner"],
        "args": command,
        "workingDir": WORK_DIR,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {
            "requests": {
                "cpu": res.cpu_request,
                "memory": res.memory_request,
                "ephemeral-storage": res.ephemeral_request,
            },
            "limits": {
                "cpu": res.cpu_limit,
                "memory": res.memory_limit,
                "ephemeral-storage": res.ephemeral_limit,
            },
        },
        "securityContext": _security_context(),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    fetch = {
        "name": FETCH_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [settings.fetch_python, "-I", "-c", FETCH_SCRIPT],
        "args": [BUNDLE_URL_FILE, BUILD_MOUNT, str(settings.bundle_max_bytes)],
        "workingDir": BUILD_MOUNT,
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": res.build_size},
        },
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "build", "mountPath": BUILD_MOUNT},
            {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_GID,
            "fsGroup": RUNNER_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [fetch],
        "containers": [runner],
        "volumes": [
            _empty_dir("build", res.build_size),
            _empty_dir("tmp", res.tmp_size),
            _empty_dir("work", res.work_size),
            _empty_dir("home", res.home_size),
            {
                "name": "secrets",
                "secret": {"secretName": name, "defaultMode": 0o440, "items": secret_items},
            },
            {
                "name": "bundle",
                "secret": {
                    "secretName": name,
                    "defaultMode": 0o440,
                    "items": [{"key": KEY_BUNDLE, "path": "url"}],
                },
            },
        ],
    }
    if settings.service_account is not None:
        pod_spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    meta_labels = labels(spec.deployment_id, spec.attempt, managed=managed)
    notes = attempt_annotations(spec.deployment_id, spec.attempt)
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": meta_labels,
            "annotations": notes,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(spec.deadline_s)),
            "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
            "template": {
                "metadata": {"labels": meta_labels, "annotations": notes},
                "spec": pod_spec,
            },
        },
    }
    refuse_secret_values(spec.secrets, {"Job": manifest})
    return manifest
