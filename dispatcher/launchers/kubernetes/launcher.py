"""The Kubernetes launcher: one Job per deploy attempt, through the official `kubernetes` client.

`launch` creates the Job (`spec.job_manifest`), then the attempt's Secret with an owner
reference to the Job's uid (`spec.secret_manifest`: the tokens, the signed bundle URL, the
resume checkpoints, the configuration files). The pod mounts the Secret by name, so it waits in
`ContainerCreating` until the Secret exists; deleting the Job deletes the Secret. A `409` on
either create means an earlier call made it: the Job is adopted when its labels say it is this
attempt's, and a Secret left by an older Job of the same name is replaced.

Events come from following the runner container's log through the API (`stream`, reading with
`logs.PodLogs`; the Job and pod answers are read by `status`). The pod log
merges stdout and stderr unless the cluster serves split streams (`log_stream="Stdout"`, the
`PodLogsQuerySplitStreams` feature): with the merged log the launcher yields the lines that are
JSON objects (the runner's stdout carries only events, one object a line; its stderr lines are
human logs, already mirrored as `log` events) and `stderr_tail` returns the others. A follow
that breaks while the runner still runs is reopened and the lines already yielded are skipped.

The exit comes from the Job's conditions and the pod (`exit_of`): `Complete`; `Failed` with
`DeadlineExceeded` -> "deadline"; a terminated runner `OOMKilled` -> "oom-killed", a signal
exit (137) -> "killed"; a failed `fetch-build` -> "bundle-fetch-failed"; an image pull that
keeps failing -> "image-pull-failed"; the Job gone -> "cancelled" after `terminate`, else
"lost". `terminate` deletes the Job (background propagation) and its pod with the grace period
(SIGTERM, then SIGKILL), and returns once the pod is gone. `running` lists Jobs by label.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from dispatcher.bundles import bundle_url
from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec
from dispatcher.launchers.kubernetes import names
from dispatcher.launchers.kubernetes import spec as specs
from dispatcher.launchers.kubernetes.logs import PodLogs
from dispatcher.launchers.kubernetes.settings import KubernetesSettings
from dispatcher.launchers.kubernetes.status import (
    PULL_ERRORS,
    KubernetesConflict,
    KubernetesError,
    KubernetesUnavailable,
    PodView,
    api_error,
    exit_of,
    pod_view,
    stuck_exit,
)

_TERMINATE_SLACK_S = 30.0  # after the grace period, how long a pod may take to disappear
_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"


class KubernetesLauncher(Launcher):
    name = "kubernetes"
    backend = "Kubernetes API server"

    def unavailable(self, error: BaseException) -> str | None:
        """No answer, a 5xx or a 429 from the API server (`api_error`): the Job and its pod
        go on meanwhile, so the attempt waits and reads on."""
        return str(error) if isinstance(error, KubernetesUnavailable) else None

    def __init__(
        self,
        api_client: k8s.ApiClient,
        config: KubernetesSettings,
        *,
        read_only_files: Sequence[str | Path] = (),
        poll_s: float = 1.0,
        request_timeout_s: float = 30.0,
        log_read_timeout_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = config.job
        self.namespace = config.job.namespace
        self.bundle_base_url = config.bundle_base_url
        self._bundle_secret = config.bundle_secret
        self.bundle_ttl_s = config.bundle_ttl_s
        self.read_only_files = tuple(str(p) for p in read_only_files)
        self.log_stream = config.log_stream
        self.pull_grace_s = config.pull_grace_s
        self.poll_s = poll_s
        self._timeout = (min(10.0, request_timeout_s), request_timeout_s)
        self._log_timeout = (min(10.0, request_timeout_s), log_read_timeout_s)
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        # The client's methods take dict bodies and return raw responses here: held as Any.
        self._batch: Any = k8s.BatchV1Api(api_client)
        self._core: Any = k8s.CoreV1Api(api_client)
        self._lock = threading.Lock()
        self._logs = PodLogs(
            self._core,
            self.namespace,
            config.log_stream,
            self._timeout,
            self._log_timeout,
            poll_s,
            sleep,
            read_pod=lambda pod: self._maybe(
                f"read pod {pod}", self._core.read_namespaced_pod, pod, self.namespace
            ),
        )
        self._cancelled: set[tuple[str, int]] = set()
        self._last_code: dict[tuple[str, int], int] = {}
        self._waiting_since: dict[tuple[str, int], float] = {}

    # ---- API calls: raw JSON in and out, every error through `api_error` -------------------

    def _call(self, doing: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self._timeout, **kwargs
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise api_error(e, doing) from e
        try:
            return json.loads(response.data or b"null")
        finally:
            response.release_conn()

    def _maybe(self, doing: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`_call`, with None for 404 Not Found."""
        try:
            return self._call(doing, method, *args, **kwargs)
        except KubernetesError as e:
            if e.status == 404:
                return None
            raise

    def _read_job(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._maybe(
            f"read Job {name}", self._batch.read_namespaced_job, name, self.namespace
        )
        return found

    def _pods(self, handle: Handle, job: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        uid = (job or {}).get("metadata", {}).get("uid")
        selector = (
            f"{_CONTROLLER_UID}={uid}"
            if uid
            else names.attempt_selector(handle.deployment_id, handle.attempt)
        )
        answer = self._call(
            f"list the pods of {handle.ref}",
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
        )
        pods: list[dict[str, Any]] = answer.get("items") or []
        return sorted(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")))

    # ---- launch ----------------------------------------------------------------------------

    def manifests(
        self, spec: RunSpec, owner_uid: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(Job, Secret) of one attempt; the Secret holds a fresh bundle URL and the current
        content of `read_only_files`."""
        files: dict[str, bytes] = {}
        for path in self.read_only_files:
            try:
                files[path] = Path(path).read_bytes()
            except OSError as e:
                raise ValueError(f"configuration file {path} cannot be read: {e.strerror}") from e
        job = specs.job_manifest(spec, self.settings, file_paths=list(files))
        expires = int(self._clock() + self.bundle_ttl_s)
        url = bundle_url(
            self.bundle_base_url, self._bundle_secret, spec.deployment_id, spec.attempt, expires
        )
        secret = specs.secret_manifest(
            spec, self.settings, bundle_url=url, files=files, owner_uid=owner_uid
        )
        return job, secret

    def launch(self, spec: RunSpec) -> Handle:
        job, _ = self.manifests(spec, None)
        name = job["metadata"]["name"]
        try:
            made = self._call(
                f"create Job {name}", self._batch.create_namespaced_job, self.namespace, job
            )
        except KubernetesError as e:
            if e.status != 409:
                raise
            made = self._read_job(name)
            if made is None:
                raise KubernetesError(f"Job {name}: create said 409, yet it is not found") from e
            ours = names.handle_fields(made.get("metadata", {}))
            if ours != (spec.deployment_id, spec.attempt):
                raise KubernetesConflict(
                    f"a Job named {name} exists and is not deployment {spec.deployment_id}'s"
                    f" attempt {spec.attempt}: refusing to adopt it",
                    409,
                ) from e
        self._ensure_secret(spec, str(made["metadata"]["uid"]))
        return Handle(self.name, spec.deployment_id, spec.attempt, name)

    def _ensure_secret(self, spec: RunSpec, job_uid: str) -> None:
        _, secret = self.manifests(spec, job_uid)
        name = secret["metadata"]["name"]
        doing = f"create Secret {name}"
        for _ in range(3):
            try:
                self._call(doing, self._core.create_namespaced_secret, self.namespace, secret)
                return
            except KubernetesError as e:
                if e.status != 409:
                    raise
            found = self._maybe(
                f"read Secret {name}", self._core.read_namespaced_secret, name, self.namespace
            )
            owners = [
                o.get("uid") for o in (found or {}).get("metadata", {}).get("ownerReferences") or []
            ]
            if found is not None and job_uid in owners:
                return  # made by an earlier call for this Job
            if found is not None:  # left by an older Job of the same name: replace it
                self._maybe(
                    f"delete stale Secret {name}",
                    self._core.delete_namespaced_secret,
                    name,
                    self.namespace,
                )
        raise KubernetesConflict(f"{doing}: it keeps being recreated by someone else", 409)

    # ---- observing -------------------------------------------------------------------------

    def _observe(self, handle: Handle) -> tuple[dict[str, Any] | None, PodView | None]:
        job = self._read_job(handle.ref)
        pods = self._pods(handle, job)
        view = pod_view(pods[-1]) if pods else None
        key = (handle.deployment_id, handle.attempt)
        if view is not None and view.runner_exit is not None:
            with self._lock:
                self._last_code[key] = view.runner_exit
        return job, view

    def _exit(
        self, handle: Handle, job: dict[str, Any] | None, view: PodView | None
    ) -> Exit | None:
        key = (handle.deployment_id, handle.attempt)
        with self._lock:
            cancelled, last = key in self._cancelled, self._last_code.get(key)
        ended = exit_of(job, view, cancelled=cancelled, last_code=last)
        if ended is not None:
            return ended
        waiting = view.waiting if view is not None else None
        with self._lock:
            if waiting is None or waiting[0] not in PULL_ERRORS:
                self._waiting_since.pop(key, None)
            else:
                self._waiting_since.setdefault(key, self._monotonic())
            since = self._waiting_since.get(key)
        return stuck_exit(waiting, since, self._monotonic(), self.pull_grace_s)

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        until = None if timeout_s is None else self._monotonic() + timeout_s
        while True:
            ended = self._exit(handle, *self._observe(handle))
            if ended is not None:
                return ended
            if until is not None and self._monotonic() >= until:
                raise TimeoutError(f"Job {handle.ref} still runs after {timeout_s} s")
            self._sleep(self.poll_s)

    # ---- the log ---------------------------------------------------------------------------

    def _runner_pod(self, handle: Handle) -> str | None:
        """The pod once its runner container has started; None if the attempt ended first."""
        while True:
            job, view = self._observe(handle)
            if view is not None and view.runner_started:
                return view.name
            if self._exit(handle, job, view) is not None:
                return None
            self._sleep(self.poll_s)

    def stream(self, handle: Handle) -> Iterator[str]:
        pod = self._runner_pod(handle)
        if pod is not None:
            yield from self._logs.follow(pod)

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        if lines <= 0:
            return ""
        _, view = self._observe(handle)
        return "" if view is None else self._logs.stderr_tail(view, lines)

    # ---- ending ----------------------------------------------------------------------------

    def terminate(self, handle: Handle, grace_s: float) -> None:
        with self._lock:
            self._cancelled.add((handle.deployment_id, handle.attempt))
        job = self._read_job(handle.ref)
        self._maybe(
            f"delete Job {handle.ref}",
            self._batch.delete_namespaced_job,
            handle.ref,
            self.namespace,
            propagation_policy="Background",
        )
        grace = max(0, math.ceil(grace_s))
        until = self._monotonic() + grace + _TERMINATE_SLACK_S
        forced = False
        asked: set[str] = set()  # pods deleted with `grace` (the GC's own delete uses the pod's)
        while True:
            pods = self._pods(handle, job)
            for pod in pods:
                view = pod_view(pod)
                if view.runner_exit is not None:
                    with self._lock:
                        self._last_code[(handle.deployment_id, handle.attempt)] = view.runner_exit
            if not pods:
                return
            late = self._monotonic() >= until
            if late and forced:
                names = ", ".join(pod_view(p).name for p in pods)
                raise KubernetesError(f"pods of Job {handle.ref} still terminating: {names}")
            for pod in pods:
                name = str(pod.get("metadata", {}).get("name"))
                if name not in asked or late:
                    asked.add(name)
                    self._maybe(
                        f"delete pod {name}",
                        self._core.delete_namespaced_pod,
                        name,
                        self.namespace,
                        grace_period_seconds=0 if late else grace,
                    )
            if late:
                forced = True
                until = self._monotonic() + _TERMINATE_SLACK_S
            self._sleep(self.poll_s)

    def remove(self, handle: Handle) -> None:
        self._maybe(
            f"delete Job {handle.ref}",
            self._batch.delete_namespaced_job,
            handle.ref,
            self.namespace,
            propagation_policy="Background",
        )
        self._maybe(
            f"delete Secret {handle.ref}",
            self._core.delete_namespaced_secret,
            handle.ref,
            self.namespace,
        )
        key = (handle.deployment_id, handle.attempt)
        with self._lock:
            self._last_code.pop(key, None)
            self._waiting_since.pop(key, None)

    def running(self) -> list[Handle]:
        answer = self._call(
            "list the deploy Jobs",
            self._batch.list_namespaced_job,
            self.namespace,
            label_selector=names.MANAGED_SELECTOR,
        )
        found = []
        for job in answer.get("items") or []:
            meta = job.get("metadata", {})
            fields = names.handle_fields(meta)
            if fields is not None:
                found.append(Handle(self.name, fields[0], fields[1], str(meta["name"])))
        return sorted(found, key=lambda h: (h.deployment_id, h.attempt))

    def health(self) -> str | None:
        try:
            self._call(
                "list Jobs",
                self._batch.list_namespaced_job,
                self.namespace,
                limit=1,
            )
        except KubernetesError as e:
            return str(e)
        return None


# ---- production factory ------------------------------------------------------------------------


def api_client_from_environment() -> k8s.ApiClient:
    """The in-cluster configuration (the pod's service account), else the kubeconfig."""
    from kubernetes import config as loaded

    config: Any = loaded  # its loaders are untyped
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as e:
            raise KubernetesError(
                f"no Kubernetes configuration: not in a cluster and no usable kubeconfig ({e})"
            ) from e
    return k8s.ApiClient()
