"""One abstract launcher: `launch`, `stream`, `wait`, `terminate`, `health`, plus what the
dispatcher needs to reconcile after a restart (`running`, `remove`).

A `RunSpec` says what to run; a launcher turns it into its backend's spec with a pure function
(unit-tested) and does the effect in a thin layer. Names are deterministic
(`forge-deploy-<deployment id>-<attempt>`), so a retried launch finds what an earlier call made.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunSpec:
    deployment_id: str
    attempt: int
    build_dir: Path  # on the dispatcher's host; the runner sees it read-only
    args: tuple[str, ...]  # forge-runner arguments, e.g. ("deploy", "--name", "x"); the launcher
    # adds `--build-dir <where the runner sees it>` and `--resume <file>` when resume_events is set
    env: Mapping[str, str] = field(default_factory=dict)  # non-secret configuration
    secrets: Mapping[str, str] = field(default_factory=dict)  # tokens, keys: a file, never env
    resume_events: str | None = None  # JSON lines of earlier attempts (masked, non-secret)
    deadline_s: float = 3600.0

    @property
    def name(self) -> str:
        return f"forge-deploy-{self.deployment_id}-{self.attempt}"


@dataclass(frozen=True)
class Handle:
    launcher: str  # "process" | "docker" | "kubernetes"
    deployment_id: str
    attempt: int
    ref: str  # pid, container id, Job name


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: unknown (lost)
    reason: str | None = None  # "oom-killed", "deadline", "cancelled", "lost", ... when known


class Launcher(abc.ABC):
    name: str
    backend = "launcher"  # what it launches on, in the log's words ("Docker engine")

    def unavailable(self, error: BaseException) -> str | None:
        """Why the backend cannot be reached for now, when `error` says so (the call is then
        waited out and tried again: every call here is idempotent); None for a real error."""
        return None

    @abc.abstractmethod
    def launch(self, spec: RunSpec) -> Handle:
        """Start the runner; idempotent for one (deployment, attempt)."""

    @abc.abstractmethod
    def stream(self, handle: Handle) -> Iterator[str]:
        """The runner's stdout lines from the start, following until it exits."""

    def recorded(self, handle: Handle) -> list[str]:
        """The runner's own copy of its event lines so far, where the backend keeps one apart
        from the log `stream` reads (Docker: a file in the attempt's folder, which a killed
        engine cannot lose); empty where the log itself is the durable record."""
        return []

    @abc.abstractmethod
    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        """Block until the runner ended (or the timeout passed: TimeoutError)."""

    @abc.abstractmethod
    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        """The end of the runner's human log (already masked by the runner)."""

    @abc.abstractmethod
    def terminate(self, handle: Handle, grace_s: float) -> None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; the runner is gone when this returns."""

    @abc.abstractmethod
    def remove(self, handle: Handle) -> None:
        """Free what the attempt left (container, secrets file); gone already is fine."""

    @abc.abstractmethod
    def running(self) -> list[Handle]:
        """Every runner of ours this backend knows of (by label), running or exited."""

    @abc.abstractmethod
    def health(self) -> str | None:
        """None when the backend can launch; else why not."""
