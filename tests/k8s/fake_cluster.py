"""A one-node Kubernetes stand-in for the launcher's tests: object store, Job controller, garbage
collector and a kubelet whose containers are REAL processes on this machine.

Only what the Kubernetes launcher uses is implemented, with the real objects' shapes: every
object stored (Jobs and Pods with their status, Secrets) is validated against the Kubernetes
1.37 schemas in strict mode (kubernetes-validate) on every write, and names, labels and
annotations are checked as the API server checks them.

- Jobs (batch/v1): the API server's defaults (selector on `batch.kubernetes.io/controller-uid`,
  the `job-name` labels on the template); one pod per Job (`backoffLimit: 0`); conditions as
  1.31+ sets them (`SuccessCriteriaMet` + `Complete`, `FailureTarget` + `Failed` with
  `BackoffLimitExceeded` or `DeadlineExceeded`); `activeDeadlineSeconds` enforced (the pod is
  deleted with its grace period); `ttlSecondsAfterFinished`; deletion with `propagationPolicy`
  (the API's default for a Job is Orphan, as in the real API).
- The garbage collector deletes the pods and Secrets whose owner Job is gone.
- The kubelet: a container whose image is unknown waits in `ErrImagePull`/`ImagePullBackOff`;
  a pod waits for the Secrets its volumes name (`ContainerCreating`); volumes are folders
  (emptyDir; a secret volume gets its items as files); init containers then the container run as
  processes under the strace loopback audit. The image is a table: command[0] -> host argv
  prefix, plus the image's environment. Paths are not isolated: every mount path appearing in
  the command, the arguments, the environment values or the working directory is rewritten to
  its folder (longest mount first), and the rest of the host filesystem is visible. The
  security context, resources and the read-only root are NOT enforced (they are checked against
  the schemas only). stdout and stderr lines go to the container's log, tagged with their
  stream. Deleting a pod sends SIGTERM to the container's main process, SIGKILL to its process
  group after the grace period, and removes the pod once the process is gone.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
import shutil
import signal
import string
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate

from tests.support import runner as runner_support
from tests.support.loopback import strace_prefix, violations

K8S_VERSION = "1.37"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class ApiError(Exception):
    """An answer of the API server other than success: a `Status` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(obj: Mapping[str, Any]) -> None:
    """Strict schema validation of a stored object; a failure is a bug of the fake or the
    launcher, so it is raised as a 422 naming the path."""
    try:
        kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path)
        raise ApiError(422, "Invalid", f"{obj.get('kind')} {where}: {e.message}") from e


def check_metadata(meta: Mapping[str, Any], *, name_rule: re.Pattern[str], max_name: int) -> None:
    name = meta.get("name")
    if not isinstance(name, str) or not name_rule.match(name) or len(name) > max_name:
        raise ApiError(422, "Invalid", f"metadata.name: Invalid value: {name!r}")
    for where in ("labels", "annotations"):
        for key, value in (meta.get(where) or {}).items():
            prefix, _, short = key.rpartition("/")
            if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(short):
                raise ApiError(422, "Invalid", f"metadata.{where}: Invalid key: {key!r}")
            if len(short) > 63:
                raise ApiError(422, "Invalid", f"metadata.{where}: key too long: {key!r}")
            if where == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                raise ApiError(422, "Invalid", f"metadata.labels: Invalid value: {value!r}")


def selector_matches(selector: str | None, labels: Mapping[str, str]) -> bool:
    """Equality-based label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass(frozen=True)
class FakeImage:
    """What a container of this image runs: command[0] -> host argv prefix; the image's env."""

    commands: Mapping[str, Sequence[str]]
    env: Mapping[str, str] = field(default_factory=dict)  # values may be paths in the pod
    host_env: Mapping[str, str] = field(default_factory=dict)  # PATH and the like: as they are


@dataclass
class LogBuffer:
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (time, stream, text)
    closed: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)

    def append(self, stream: str, text: str) -> None:
        with self.cond:
            self.lines.append((now_rfc3339(), stream, text))
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@dataclass
class Running:
    """The process of one running container."""

    process: subprocess.Popen[bytes]
    main_pid: int  # the container's PID 1: the program itself (strace's child)
    kill_at: float | None = None


class FakeCluster:
    def __init__(self, workdir: Path, images: Mapping[str, FakeImage], *, audit: bool = True):
        self.workdir = workdir
        self.images = dict(images)
        self.audit = audit
        self.lock = threading.RLock()
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str, str], LogBuffer] = {}
        self.running: dict[tuple[str, str], Running] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, body): every call
        self.audits: list[Path] = []
        self.started_processes = 0
        self.cut_follows: list[int] = []  # followed logs to cut after that many lines
        self.api_going_down = threading.Event()  # the API server stops: its follows end
        self._rv = 0
        self._job_state: dict[str, dict[str, Any]] = {}  # by uid: the controller's memory
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._spawn(self._control_loop, "fake-job-controller")

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            runs = list(self.running.values())
        for run in runs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(timeout=30)

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def loopback_violations(self) -> list[str]:
        return [line for log in self.audits for line in violations(log)]

    # ---- storage ---------------------------------------------------------------------------

    def _store(self, table: dict[tuple[str, str], dict[str, Any]], obj: dict[str, Any]) -> None:
        validate(obj)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        table[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def _new_meta(self, meta: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        made = {k: v for k, v in meta.items() if k not in ("uid", "resourceVersion")}
        made.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=now_rfc3339(),
            generation=1,
        )
        return made

    # ---- Jobs ------------------------------------------------------------------------------

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("kind") != "Job" or body.get("apiVersion") != "batch/v1":
            raise ApiError(400, "BadRequest", "expected a batch/v1 Job")
        validate(body)
        meta = body.get("metadata") or {}
        check_metadata(meta, name_rule=_DNS_LABEL, max_name=63)
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object does not match")
        template = body["spec"]["template"]
        check_metadata(
            {"name": "x", **(template.get("metadata") or {})}, name_rule=_DNS_LABEL, max_name=63
        )
        if template["spec"].get("restartPolicy") not in ("Never", "OnFailure"):
            raise ApiError(422, "Invalid", "spec.template.spec.restartPolicy: Unsupported value")
        with self.lock:
            key = (namespace, meta["name"])
            if key in self.jobs:
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{meta["name"]}" already exists')
            job = dict(body)
            job["metadata"] = self._new_meta(meta, namespace)
            uid = job["metadata"]["uid"]
            extra = {
                CONTROLLER_UID: uid,
                "controller-uid": uid,
                JOB_NAME: meta["name"],
                "job-name": meta["name"],
            }
            spec = dict(body["spec"])
            spec.update(
                parallelism=spec.get("parallelism", 1),
                completions=spec.get("completions", 1),
                completionMode=spec.get("completionMode", "NonIndexed"),
                suspend=spec.get("suspend", False),
                podReplacementPolicy=spec.get("podReplacementPolicy", "TerminatingOrFailed"),
                manualSelector=False,
                selector={"matchLabels": {CONTROLLER_UID: uid}},
            )
            tmeta = dict(template.get("metadata") or {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **extra}
            pod_spec = dict(template["spec"])
            pod_spec.setdefault("dnsPolicy", "ClusterFirst")
            pod_spec.setdefault("schedulerName", "default-scheduler")
            spec["template"] = {"metadata": tmeta, "spec": pod_spec}
            job["spec"] = spec
            job["status"] = {
                "startTime": now_rfc3339(),
                "active": 1,
                "ready": 0,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
            self._store(self.jobs, job)
            self._job_state[uid] = {
                "started": time.monotonic(),
                "deadline_hit": False,
                "finished_at": None,
            }
            self._make_pod(job)
            return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                raise ApiError(404, "NotFound", f'jobs.batch "{name}" not found')
            return job

    def list_jobs(self, namespace: str, selector: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                j
                for (ns, _), j in sorted(self.jobs.items())
                if ns == namespace and selector_matches(selector, j["metadata"].get("labels", {}))
            ]

    def delete_job(self, namespace: str, name: str, propagation: str | None) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.pop((namespace, name), None)
            if job is None:
                raise ApiError(404, "NotFound", f'jobs.batch "{name}" not found')
            if (propagation or "Orphan") == "Orphan":  # a Job's default, as in the real API
                uid = job["metadata"]["uid"]
                for pod in self.pods.values():
                    refs = pod["metadata"].get("ownerReferences") or []
                    pod["metadata"]["ownerReferences"] = [r for r in refs if r["uid"] != uid]
            return job

    # ---- Secrets ---------------------------------------------------------------------------

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("kind") != "Secret" or body.get("apiVersion") != "v1":
            raise ApiError(400, "BadRequest", "expected a v1 Secret")
        validate(body)
        meta = body.get("metadata") or {}
        check_metadata(meta, name_rule=_DNS_SUBDOMAIN, max_name=253)
        data = dict(body.get("data") or {})
        for key, value in (body.get("stringData") or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        if any(not _SECRET_KEY.match(k) for k in data):
            raise ApiError(422, "Invalid", "data: Invalid key")
        if sum(len(base64.b64decode(v)) for v in data.values()) > 1024 * 1024:
            raise ApiError(422, "Invalid", "data: Too long: must have at most 1048576 bytes")
        with self.lock:
            if (namespace, meta["name"]) in self.secrets:
                raise ApiError(409, "AlreadyExists", f'secrets "{meta["name"]}" already exists')
            secret = {k: v for k, v in body.items() if k != "stringData"}
            secret["metadata"] = self._new_meta(meta, namespace)
            secret["metadata"].pop("generation")
            secret["data"] = data
            secret.setdefault("type", "Opaque")
            self._store(self.secrets, secret)
            return secret

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.secrets.get((namespace, name))
            if found is None:
                raise ApiError(404, "NotFound", f'secrets "{name}" not found')
            return found

    def delete_secret(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.secrets.pop((namespace, name), None)
            if found is None:
                raise ApiError(404, "NotFound", f'secrets "{name}" not found')
            return found

    # ---- Pods ------------------------------------------------------------------------------

    def _make_pod(self, job: dict[str, Any]) -> None:
        template = job["spec"]["template"]
        base = job["metadata"]["name"][:58]
        name = f"{base}-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        meta = self._new_meta(template.get("metadata") or {}, job["metadata"]["namespace"])
        meta.pop("generation")
        meta.update(
            name=name,
            generateName=f"{base}-",
            ownerReferences=[
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job["metadata"]["name"],
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            finalizers=["batch.kubernetes.io/job-tracking"],
        )
        spec = dict(template["spec"])
        spec["nodeName"] = "fake-node"
        for group in ("initContainers", "containers"):
            spec[group] = [
                {"terminationMessagePath": "/dev/termination-log", **c}
                for c in spec.get(group) or []
            ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": spec,
            "status": {
                "phase": "Pending",
                "qosClass": "Burstable",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
                ],
                "initContainerStatuses": [
                    self._status(c, {"waiting": {"reason": "PodInitializing"}})
                    for c in spec.get("initContainers") or []
                ],
                "containerStatuses": [
                    self._status(c, {"waiting": {"reason": "ContainerCreating"}})
                    for c in spec["containers"]
                ],
            },
        }
        self._store(self.pods, pod)
        self._spawn(self._kubelet, f"fake-kubelet-{name}", (meta["namespace"], name))

    @staticmethod
    def _status(container: Mapping[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": "running" in state,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
            "lastState": {},
        }

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            found = self.pods.get((namespace, name))
            if found is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            return found

    def list_pods(self, namespace: str, selector: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                p
                for (ns, _), p in sorted(self.pods.items())
                if ns == namespace and selector_matches(selector, p["metadata"].get("labels", {}))
            ]

    def delete_pod(self, namespace: str, name: str, grace: int | None) -> dict[str, Any]:
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise ApiError(404, "NotFound", f'pods "{name}" not found')
            if grace is None:
                grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
            meta = pod["metadata"]
            first = meta.get("deletionTimestamp") is None
            current = meta.get("deletionGracePeriodSeconds")
            if first or (current is not None and grace < current):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = grace
                self._store(self.pods, pod)
            run = self.running.get((namespace, name))
            if run is None:
                if self._pod_idle(pod):
                    self._remove_pod((namespace, name))
                return pod
            kill_at = time.monotonic() + grace
            if first:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.main_pid, signal.SIGTERM)
            if run.kill_at is None or kill_at < run.kill_at:
                run.kill_at = kill_at
            return pod

    def _pod_idle(self, pod: Mapping[str, Any]) -> bool:
        """No container process runs and none will start (it is deleting): safe to remove."""
        return pod["metadata"].get("deletionTimestamp") is not None

    def _remove_pod(self, key: tuple[str, str]) -> None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            shutil.rmtree(self._pod_dir(key), ignore_errors=True)
            for (ns, name, _), buffer in self.logs.items():
                if (ns, name) == key:
                    buffer.close()

    def kill(self, namespace: str, pod: str, sig: int = signal.SIGKILL) -> None:
        """The test's hand: `sig` to the running container's whole process group (what an
        OOM kill or a node's sudden death does to it)."""
        with self.lock:
            run = self.running[(namespace, pod)]
        os.killpg(run.process.pid, sig)

    def log(self, namespace: str, pod: str, container: str) -> LogBuffer:
        with self.lock:
            found = self.pods.get((namespace, pod))
            if found is None:
                raise ApiError(404, "NotFound", f'pods "{pod}" not found')
            names = [c["name"] for c in found["spec"]["containers"]] + [
                c["name"] for c in found["spec"].get("initContainers") or []
            ]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod")
            buffer = self.logs.get((namespace, pod, container))
            if buffer is None:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{pod}" is waiting to start: PodInitializing',
                )
            return buffer

    # ---- the kubelet -----------------------------------------------------------------------

    def _pod_dir(self, key: tuple[str, str]) -> Path:
        return self.workdir / "pods" / f"{key[0]}--{key[1]}"

    def _update_pod(self, key: tuple[str, str], change: Any) -> bool:
        """Apply `change(pod)` and store; False when the pod is gone."""
        with self.lock:
            pod = self.pods.get(key)
            if pod is None:
                return False
            change(pod)
            self._store(self.pods, pod)
            return True

    def _deleting(self, key: tuple[str, str]) -> bool:
        with self.lock:
            pod = self.pods.get(key)
            return pod is None or pod["metadata"].get("deletionTimestamp") is not None

    def _set_state(
        self,
        key: tuple[str, str],
        group: str,
        name: str,
        state: dict[str, Any],
        phase: str | None = None,
    ) -> bool:
        def change(pod: dict[str, Any]) -> None:
            for item in pod["status"][group]:
                if item["name"] == name:
                    item["state"] = state
                    item["ready"] = item["started"] = "running" in state
            if phase is not None:
                pod["status"]["phase"] = phase
                pod["status"].setdefault("startTime", now_rfc3339())

        return self._update_pod(key, change)

    def _kubelet(self, key: tuple[str, str]) -> None:
        try:
            self._run_pod(key)
        finally:
            with self.lock:
                pod = self.pods.get(key)
                if pod is not None and pod["metadata"].get("deletionTimestamp") is not None:
                    self._remove_pod(key)

    def _run_pod(self, key: tuple[str, str]) -> None:
        with self.lock:
            spec = self.pods[key]["spec"]
        containers = [("initContainerStatuses", c) for c in spec.get("initContainers") or []]
        containers += [("containerStatuses", c) for c in spec["containers"]]
        unknown = [(g, c) for g, c in containers if c["image"] not in self.images]
        if unknown:
            group, container = unknown[0]
            message = f'Back-off pulling image "{container["image"]}"'
            self._set_state(
                key,
                group,
                container["name"],
                {"waiting": {"reason": "ErrImagePull", "message": message}},
            )
            self._set_state(
                key,
                group,
                container["name"],
                {"waiting": {"reason": "ImagePullBackOff", "message": message}},
            )
            while not self._deleting(key) and not self._stop.is_set():
                time.sleep(0.02)
            return
        volumes = self._wait_for_volumes(key, spec)
        if volumes is None:
            return
        for group, container in containers:
            if self._deleting(key) or self._stop.is_set():
                return
            code = self._run_container(key, group, container, volumes)
            if code is None:
                return
            if group == "initContainerStatuses" and code != 0:
                self._update_pod(key, lambda p: p["status"].update(phase="Failed"))
                for other in spec["containers"]:
                    self._set_state(
                        key,
                        "containerStatuses",
                        other["name"],
                        {"waiting": {"reason": "PodInitializing"}},
                    )
                return
            if group == "containerStatuses":
                phase = "Succeeded" if code == 0 else "Failed"
                self._update_pod(key, lambda p, ph=phase: p["status"].update(phase=ph))

    def _wait_for_volumes(
        self, key: tuple[str, str], spec: Mapping[str, Any]
    ) -> dict[str, Path] | None:
        """Folders of the pod's volumes, once every Secret they name exists (None: deleted)."""
        namespace = key[0]
        wanted = {v["secret"]["secretName"] for v in spec.get("volumes") or [] if "secret" in v}
        while True:
            if self._deleting(key) or self._stop.is_set():
                return None
            with self.lock:
                secrets = {n: self.secrets.get((namespace, n)) for n in wanted}
            if all(s is not None for s in secrets.values()):
                break
            time.sleep(0.02)
        root = self._pod_dir(key)
        folders: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            folder = root / "volumes" / volume["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)
            if "secret" in volume:
                found = secrets[volume["secret"]["secretName"]]
                assert found is not None
                data = found.get("data") or {}
                items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
                mode = volume["secret"].get("defaultMode", 0o644)
                for item in items:
                    if item["key"] not in data:
                        raise AssertionError(f"secret has no key {item['key']}: pod stuck")
                    path = folder / item["path"]
                    path.write_bytes(base64.b64decode(data[item["key"]]))
                    path.chmod(item.get("mode", mode))
            folders[volume["name"]] = folder
        return folders

    def _run_container(
        self,
        key: tuple[str, str],
        group: str,
        container: Mapping[str, Any],
        volumes: Mapping[str, Path],
    ) -> int | None:
        image = self.images[container["image"]]
        mounts = sorted(
            (
                (m["mountPath"], volumes[m["name"]] / m.get("subPath", ""))
                for m in container.get("volumeMounts") or []
            ),
            key=lambda item: -len(item[0]),
        )

        def mapped(text: str) -> str:
            for path, folder in mounts:
                if text == path or text.startswith(path.rstrip("/") + "/"):
                    return str(folder) + text[len(path) :]
            return text

        command = list(container.get("command") or [])
        if not command or command[0] not in image.commands:
            raise AssertionError(f"the fake image does not know command {command[:1]}")
        argv = [*image.commands[command[0]], *command[1:], *(container.get("args") or [])]
        argv = [argv[0], *(mapped(a) for a in argv[1:])]
        env = {**image.host_env, **{k: mapped(v) for k, v in image.env.items()}}
        for item in container.get("env") or []:
            env[item["name"]] = mapped(item.get("value", ""))
        cwd = mapped(container.get("workingDir") or "/")
        name = container["name"]
        self.started_processes += 1
        prefix: list[str] = []
        if self.audit:
            audit = self._pod_dir(key) / f"strace-{name}.log"
            self.audits.append(audit)
            prefix = strace_prefix(audit)
        buffer = LogBuffer()
        process = subprocess.Popen(
            [*prefix, *argv],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        started = now_rfc3339()
        main = _child_of(process.pid, argv[0]) if prefix else process.pid
        with self.lock:
            self.logs[(key[0], key[1], name)] = buffer
            run = Running(process, main)
            self.running[key] = run
            if self._deleting(key):  # deleted while it was being started: it goes at once
                run.kill_at = time.monotonic()
        pods_phase = "Running" if group == "containerStatuses" else None
        self._set_state(key, group, name, {"running": {"startedAt": started}}, pods_phase)
        readers = [
            threading.Thread(
                target=self._read, args=(process.stdout, "stdout", buffer), daemon=True
            ),
            threading.Thread(
                target=self._read, args=(process.stderr, "stderr", buffer), daemon=True
            ),
        ]
        for reader in readers:
            reader.start()
        while process.poll() is None:
            with self.lock:
                late = run.kill_at is not None and time.monotonic() >= run.kill_at
            if late or self._stop.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.02)
        for reader in readers:
            reader.join()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what the container left behind goes too
        code = process.returncode if process.returncode >= 0 else 128 - process.returncode
        with self.lock:
            self.running.pop(key, None)
        captured = "\n".join(text for _, _, text in buffer.lines)
        runner_support.CAPTURED.append(captured)
        reason = "Completed" if code == 0 else "Error"
        self._set_state(
            key,
            group,
            name,
            {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": started,
                    "finishedAt": now_rfc3339(),
                }
            },
        )
        buffer.close()
        return code

    @staticmethod
    def _read(pipe: Any, stream: str, buffer: LogBuffer) -> None:
        for raw in iter(pipe.readline, b""):
            buffer.append(stream, raw.decode("utf-8", errors="replace").rstrip("\n"))
        pipe.close()

    # ---- the Job controller and the garbage collector --------------------------------------

    def _control_loop(self) -> None:
        while not self._stop.wait(0.02):
            with self.lock:
                self._control_jobs()
                self._collect_garbage()

    def _condition(self, kind: str, reason: str, message: str) -> dict[str, Any]:
        stamp = now_rfc3339()
        return {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": stamp,
            "lastTransitionTime": stamp,
        }

    def _control_jobs(self) -> None:
        for job in list(self.jobs.values()):
            uid = job["metadata"]["uid"]
            state = self._job_state[uid]
            status = job["status"]
            if state["finished_at"] is not None:
                ttl = job["spec"].get("ttlSecondsAfterFinished")
                if ttl is not None and time.monotonic() >= state["finished_at"] + ttl:
                    self.delete_job(
                        job["metadata"]["namespace"], job["metadata"]["name"], "Background"
                    )
                continue
            pods = [
                p for p in self.pods.values() if p["metadata"]["labels"].get(CONTROLLER_UID) == uid
            ]
            deadline = job["spec"].get("activeDeadlineSeconds")
            if (
                not state["deadline_hit"]
                and deadline is not None
                and time.monotonic() - state["started"] >= deadline
            ):
                state["deadline_hit"] = True
                status["conditions"] = [
                    self._condition(
                        "FailureTarget",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                ]
                for pod in pods:
                    self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], None)
                self._store(self.jobs, job)
                continue
            ended = None
            if state["deadline_hit"]:
                if not pods:
                    ended = (
                        "Failed",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
            elif not pods or any(p["status"]["phase"] == "Failed" for p in pods):
                ended = (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif any(p["status"]["phase"] == "Succeeded" for p in pods):
                ended = (
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            if ended is None:
                running = any(p["status"]["phase"] == "Running" for p in pods)
                if status.get("ready") != int(running):
                    status["ready"] = int(running)
                    self._store(self.jobs, job)
                continue
            kind, reason, message = ended
            first = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            kept = [c for c in status.get("conditions") or [] if c["type"] == first]
            status["conditions"] = kept or [self._condition(first, reason, message)]
            status["conditions"].append(self._condition(kind, reason, message))
            status.update(active=0, ready=0, terminating=0)
            status["succeeded" if kind == "Complete" else "failed"] = 1
            if kind == "Complete":
                status["completionTime"] = now_rfc3339()
            state["finished_at"] = time.monotonic()
            for pod in pods:
                pod["metadata"]["finalizers"] = []
                self._store(self.pods, pod)
            self._store(self.jobs, job)

    def _collect_garbage(self) -> None:
        alive = {j["metadata"]["uid"] for j in self.jobs.values()}
        for pod in list(self.pods.values()):
            refs = pod["metadata"].get("ownerReferences") or []
            orphaned = refs and not any(r["uid"] in alive for r in refs)
            if orphaned and pod["metadata"].get("deletionTimestamp") is None:
                self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], None)
        for key, secret in list(self.secrets.items()):
            refs = secret["metadata"].get("ownerReferences") or []
            if refs and not any(r["uid"] in alive for r in refs):
                self.secrets.pop(key)

    def objects(self) -> Iterator[dict[str, Any]]:
        """Every Job, Pod and Secret stored now."""
        with self.lock:
            yield from (
                list(self.jobs.values()) + list(self.pods.values()) + list(self.secrets.values())
            )


def _child_of(pid: int, program: str) -> int:
    """The program strace started: strace's child running `program` (strace may fork a
    short-lived probe child first, and a fresh child shows strace's own command line until it
    has exec'd)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for _ in range(2000):
        found = children.read_text().split() if children.exists() else []
        for child in found:
            try:
                argv0 = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if argv0.decode(errors="replace") == program:
                return int(child)
        time.sleep(0.005)
    raise AssertionError(f"{program} did not start under strace")
