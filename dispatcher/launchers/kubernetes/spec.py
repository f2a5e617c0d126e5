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
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.bundles import FETCH_SCRIPT
from dispatcher.core.ports import RunSpec, check_attempt
from dispatcher.core.secrets import is_secret_name
from dispatcher.launchers.common import (
    BUILD_MOUNT,
    HOME_DIR,
    RUNNER_GID,
    RUNNER_UID,
    WORK_DIR,
    format_env_file,
    refuse_secret_values,
    runner_command,
)
from dispatcher.launchers.kubernetes.names import attempt_annotations, digest, job_name, labels
from dispatcher.launchers.kubernetes.settings import JobSettings

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

MAX_SECRET_BYTES = 1024 * 1024  # the API server's limit for one Secret
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIXED_ENV = ("FORGE_DEPLOY_ID", "FORGE_ENV_FILE")


def file_key(path: str) -> str:
    """The Secret key of a configuration file mounted at `path` (e.g. the CA file):
    `file-<12 hex of sha256(path)>-<its base name>`, so the key keeps the file's suffix."""
    base = re.sub(r"[^-._a-zA-Z0-9]", "_", path.rsplit("/", 1)[-1])[-100:]
    return f"file-{digest(path, 12)}-{base}"


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
    check_attempt(spec.deployment_id, spec.attempt)
    if spec.deadline_s <= 0:
        raise ValueError(f"deadline_s must be positive, got {spec.deadline_s}")
    name = job_name(spec.deployment_id, spec.attempt)
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
                "spec": _pod_spec(spec, settings, name, file_paths),
            },
        },
    }
    refuse_secret_values(spec.secrets, {"Job": manifest})
    return manifest


def _pod_spec(
    spec: RunSpec, settings: JobSettings, name: str, file_paths: Sequence[str]
) -> dict[str, Any]:
    """One pod: the init container fetching the build, the runner, their volumes."""
    res = settings.resources
    secret_items = [{"key": KEY_ENV, "path": KEY_ENV}]
    if spec.resume_events is not None:
        secret_items.append({"key": KEY_RESUME, "path": KEY_RESUME})
    mounts, file_items = _runner_mounts(file_paths)
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
        "initContainers": [_fetch_container(settings)],
        "containers": [_runner_container(spec, settings, mounts)],
        "volumes": [
            _empty_dir("build", res.build_size),
            _empty_dir("tmp", res.tmp_size),
            _empty_dir("work", res.work_size),
            _empty_dir("home", res.home_size),
            {
                "name": "secrets",
                "secret": {
                    "secretName": name,
                    "defaultMode": 0o440,
                    "items": secret_items + file_items,
                },
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
    return pod_spec


def _runner_mounts(
    file_paths: Sequence[str],
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(the runner's volume mounts, the Secret's items of the configuration files)."""
    mounts: list[dict[str, Any]] = [
        {"name": "build", "mountPath": BUILD_MOUNT, "readOnly": True},
        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - in the container
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "home", "mountPath": HOME_DIR},
    ]
    items: list[dict[str, str]] = []
    taken = {m["mountPath"] for m in mounts}
    read_only = (BUILD_MOUNT, SECRETS_DIR, BUNDLE_DIR)  # no mount point can be made inside
    for path in file_paths:
        if not path.startswith("/") or path in taken:
            raise ValueError(f"configuration file {path!r}: expected a free absolute path")
        if any(path.startswith(f"{t}/") for t in read_only):
            raise ValueError(f"configuration file {path!r} would be inside a read-only mount")
        taken.add(path)
        key = file_key(path)
        items.append({"key": key, "path": key})
        mounts.append({"name": "secrets", "mountPath": path, "subPath": key, "readOnly": True})
    return mounts, items


def _runner_container(
    spec: RunSpec, settings: JobSettings, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    res = settings.resources
    resume = RESUME_FILE if spec.resume_events is not None else None
    return {
        "name": RUNNER_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["forge-runner"],
        "args": runner_command(spec, BUILD_MOUNT, resume),
        "workingDir": WORK_DIR,
        "env": [{"name": k, "value": v} for k, v in _check_env(spec).items()],
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


def _fetch_container(settings: JobSettings) -> dict[str, Any]:
    """The init container: the build's bundle fetched into the `build` emptyDir."""
    return {
        "name": FETCH_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [settings.fetch_python, "-I", "-c", FETCH_SCRIPT],
        "args": [BUNDLE_URL_FILE, BUILD_MOUNT, str(settings.bundle_max_bytes)],
        "workingDir": BUILD_MOUNT,
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
            "limits": {
                "cpu": "500m",
                "memory": "256Mi",
                "ephemeral-storage": settings.resources.build_size,
            },
        },
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "build", "mountPath": BUILD_MOUNT},
            {"name": "bundle", "mountPath": BUNDLE_DIR, "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
