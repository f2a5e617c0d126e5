"""Reading a deploy pod's log through the API: following the runner's stdout events (merged
with stderr unless the cluster splits the streams), and the tail of its human lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from dispatcher.launchers.kubernetes import spec as specs
from dispatcher.launchers.kubernetes.status import (
    KubernetesError,
    PodView,
    api_error,
    complete_lines,
    pod_view,
)

_STDERR_TAIL_LINES = 2000


class PodLogs:
    def __init__(
        self,
        core: Any,
        namespace: str,
        log_stream: str,
        timeout: tuple[float, float],
        log_timeout: tuple[float, float],
        poll_s: float,
        sleep: Callable[[float], None],
        read_pod: Callable[[str], dict[str, Any] | None],
    ) -> None:
        self._core = core  # kubernetes.client.CoreV1Api, raw responses
        self._read_pod = read_pod  # None once the pod is gone
        self.namespace = namespace
        self.log_stream = log_stream
        self._timeout, self._log_timeout = timeout, log_timeout
        self.poll_s = poll_s
        self._sleep = sleep

    def _keep(self, line: str) -> bool:
        return self.log_stream == "Stdout" or line.startswith("{")

    def _open_log(self, pod: str, follow: bool, **extra: Any) -> Any:
        if self.log_stream != "All":
            extra.setdefault("stream", self.log_stream)
        try:
            return self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=specs.RUNNER_CONTAINER,
                follow=follow,
                _preload_content=False,
                _request_timeout=self._log_timeout if follow else self._timeout,
                **extra,
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise api_error(e, f"read the log of pod {pod}") from e

    def follow(self, pod: str) -> Iterator[str]:
        """The runner's log lines as they come; a follow that breaks while the runner still
        runs is reopened and the lines already seen are skipped."""
        done = 0  # lines of the log already seen (yielded or not kept)
        while True:
            seen, rest, broke = 0, b"", False
            try:
                response = self._open_log(pod, follow=True)
            except KubernetesError as e:
                if e.status == 404:
                    return
                raise
            try:
                for chunk in response.stream(64 * 1024, decode_content=True):
                    lines, rest = complete_lines(rest + chunk)
                    for line in lines:
                        seen += 1
                        if seen > done:
                            done = seen
                            if self._keep(line):
                                yield line
            except (urllib3.exceptions.HTTPError, OSError):
                broke = True  # reopened below when the runner still runs
            finally:
                response.close()  # never back to the pool with unread data (a closed follow)
                response.release_conn()
            found = self._read_pod(pod)
            if found is None:
                return
            view = pod_view(found)
            if view.runner_exit is None:
                self._sleep(self.poll_s)  # the follow ended early: reopen, skipping `done`
                continue
            if broke:
                yield from self._catch_up(pod, done)
            elif rest and self._keep(rest.decode("utf-8", errors="replace")):
                yield rest.decode("utf-8", errors="replace")
            return

    def _catch_up(self, pod: str, done: int) -> Iterator[str]:
        """After a broken follow of a finished runner: the log's lines past the first `done`."""
        try:
            response = self._open_log(pod, follow=False)
        except KubernetesError as e:
            if e.status == 404:
                return
            raise
        try:
            text = response.data.decode("utf-8", errors="replace")
        finally:
            response.release_conn()
        for line in text.splitlines()[done:]:
            if self._keep(line):
                yield line

    def stderr_tail(self, view: PodView, lines: int) -> str:
        """The last `lines` human lines of the runner (of `fetch-build` if it never started)."""
        container = specs.RUNNER_CONTAINER if view.runner_started else specs.FETCH_CONTAINER
        extra: dict[str, Any] = {"container": container}
        if container == specs.RUNNER_CONTAINER and self.log_stream == "Stdout":
            extra["stream"] = "Stderr"
        else:
            extra["tail_lines"] = _STDERR_TAIL_LINES
        text = self._maybe_text(view.name, extra)
        kept = [
            line
            for line in text.splitlines()
            if container == specs.FETCH_CONTAINER
            or self.log_stream == "Stdout"
            or not line.startswith("{")
        ]
        return "\n".join(kept[-lines:])

    def _maybe_text(self, pod: str, extra: Mapping[str, Any]) -> str:
        try:
            response = self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                _preload_content=False,
                _request_timeout=self._timeout,
                **extra,
            )
        except ApiException as e:
            if e.status in (400, 404):  # gone, or the container never started
                return ""
            raise api_error(e, f"read the log of pod {pod}") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise api_error(e, f"read the log of pod {pod}") from e
        try:
            return str(response.data.decode("utf-8", errors="replace"))
        finally:
            response.release_conn()
