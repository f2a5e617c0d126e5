"""Reading the Kubernetes API's answers: its errors as one typed tree (`api_error`), a pod as
the launcher sees it (`pod_view`), and why an attempt ended (`exit_of`, `stuck_exit`): pure
functions of the Job and pod JSON, tested without a cluster."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from dispatcher.core.ports import Exit
from dispatcher.launchers.kubernetes import spec as specs

PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff"})
FATAL_WAITING = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)


class KubernetesError(RuntimeError):
    """The API refused or failed a call; `status` is its HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubernetesUnavailable(KubernetesError):
    """The API server did not answer, or answered 429/5xx: try again later."""


class KubernetesDenied(KubernetesError):
    """401/403: the dispatcher's service account lacks a permission (see k8s/rbac.yaml)."""


class KubernetesConflict(KubernetesError):
    """An object of the attempt's name exists and is not this attempt's."""


def api_error(error: Exception, doing: str) -> KubernetesError:
    """The one mapping of the client's errors onto `KubernetesError`s (chain with `from`)."""
    if isinstance(error, ApiException):
        status = int(error.status) if error.status is not None else None
        detail = str(error.reason or "")
        try:
            body = json.loads(error.body or "{}")
            detail = str(body.get("message") or detail)
        except (ValueError, AttributeError):
            pass
        message = f"{doing}: HTTP {status}: {detail}"
        if status in (401, 403):
            return KubernetesDenied(
                f"{message} (the dispatcher's service account needs the Role in k8s/rbac.yaml)",
                status,
            )
        if status == 429 or (status is not None and status >= 500):
            return KubernetesUnavailable(message, status)
        return KubernetesError(message, status)
    return KubernetesUnavailable(f"{doing}: the API server did not answer: {error}")


# ---- what the Job and its pod say (pure) -------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str
    runner_started: bool  # the runner container is running or has terminated
    runner_exit: int | None  # its exit code once terminated
    runner_reason: str | None  # its terminated reason: Completed, Error, OOMKilled
    fetch_failed: bool  # the init container terminated with a nonzero code
    waiting: tuple[str, str] | None  # (reason, message) of a container stuck waiting
    pod_reason: str | None  # status.reason, e.g. Evicted


def pod_view(pod: Mapping[str, Any]) -> PodView:
    status = pod.get("status") or {}
    runner: Mapping[str, Any] = {}
    for item in status.get("containerStatuses") or []:
        if item.get("name") == specs.RUNNER_CONTAINER:
            runner = item.get("state") or {}
    fetch_failed = False
    waiting: tuple[str, str] | None = None
    for item in status.get("initContainerStatuses") or []:
        state = item.get("state") or {}
        ended = state.get("terminated")
        if ended and ended.get("exitCode", 0) != 0:
            fetch_failed = True
        if state.get("waiting", {}).get("reason") in PULL_ERRORS | FATAL_WAITING:
            waiting = (state["waiting"]["reason"], str(state["waiting"].get("message", "")))
    if runner.get("waiting", {}).get("reason") in PULL_ERRORS | FATAL_WAITING:
        waiting = (runner["waiting"]["reason"], str(runner["waiting"].get("message", "")))
    terminated = runner.get("terminated")
    return PodView(
        name=str(pod.get("metadata", {}).get("name", "")),
        phase=str(status.get("phase", "Pending")),
        runner_started="running" in runner or terminated is not None,
        runner_exit=int(terminated["exitCode"]) if terminated else None,
        runner_reason=str(terminated.get("reason")) if terminated else None,
        fetch_failed=fetch_failed,
        waiting=waiting,
        pod_reason=status.get("reason"),
    )


def job_end(job: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """("Complete", None) or ("Failed", reason) once the Job has ended; None while it runs."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"]), condition.get("reason")
    return None


def exit_of(
    job: Mapping[str, Any] | None,
    pod: PodView | None,
    *,
    cancelled: bool = False,
    last_code: int | None = None,
) -> Exit | None:
    """The attempt's exit from its Job (None: deleted) and newest pod; None while it runs."""
    code = pod.runner_exit if pod is not None and pod.runner_exit is not None else last_code
    if job is None:
        return Exit(code, "cancelled" if cancelled else "lost")
    end = job_end(job)
    if end is None:
        return None
    if end[0] == "Complete":
        return Exit(code if code is not None else 0)
    if cancelled:
        return Exit(code, "cancelled")
    if end[1] == "DeadlineExceeded":
        return Exit(code, "deadline")
    if pod is None:
        return Exit(code, "lost")
    if pod.runner_reason == "OOMKilled":
        return Exit(code, "oom-killed")
    if pod.fetch_failed:
        return Exit(None, "bundle-fetch-failed")
    if pod.pod_reason == "Evicted":
        return Exit(code, "evicted")
    if code is None:
        return Exit(None, "lost")
    if code > 128:
        return Exit(code, "killed")
    return Exit(code)


def stuck_exit(
    waiting: tuple[str, str] | None, since: float | None, now: float, grace_s: float
) -> Exit | None:
    """An Exit for a pod that cannot start: at once for a fatal reason, after `grace_s` of
    image pull errors (the kubelet retries them; a registry hiccup passes)."""
    if waiting is None:
        return None
    reason = waiting[0]
    if reason in FATAL_WAITING:
        return Exit(None, "image-pull-failed" if "Image" in reason else "container-config-error")
    if since is not None and now - since >= grace_s:
        return Exit(None, "image-pull-failed")
    return None


def complete_lines(buffer: bytes) -> tuple[list[str], bytes]:
    """The complete lines of `buffer` and the unfinished rest."""
    *lines, rest = buffer.split(b"\n")
    return [line.decode("utf-8", errors="replace") for line in lines], rest


# ---- the launcher ------------------------------------------------------------------------------
