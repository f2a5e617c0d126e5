"""What the core asks of the outside, as interfaces the adapters implement: the `Store`
(`dispatcher.store`: SQLite or PostgreSQL) and the `Launcher` (`dispatcher.launchers`: a local
process, a Docker container, a Kubernetes Job), with the values that cross them.

Dependencies point inward: the adapters import this module, the core imports no adapter. An
adapter speaks the core's errors (`core.errors`): a store raises `StoreUnavailable` for an
outage, never its driver's exception; a launcher says which of its errors mean its backend is
away for now (`Launcher.unavailable`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatcher.model import Deployment, Patch, StoredEvent
from runner import events as runner_events
from runner.events import DeploymentId


# ---- the store ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewEvent:
    """An event to append; the store assigns the per-deployment `id`."""

    attempt: int
    type: str
    ts: str
    payload: dict[str, Any]
    runner_seq: int | None = None


class Store(abc.ABC):
    """What the dispatcher keeps. Every method is a short transaction; no row holds a secret
    (sealed values live in their own table, opaque without the dispatcher's private key). An
    outage raises `StoreUnavailable`; an unknown id `UnknownDeployment`."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Apply the shipped migrations not yet applied (idempotent, concurrency-safe)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        """`tell(StoreUnavailable)` whenever a kept connection is found broken (a PostgreSQL
        restart the pool met before any call failed); a store with no such connections never
        calls it."""
        del tell  # nothing kept between calls here

    # -- deployments ------------------------------------------------------------------------
    @abc.abstractmethod
    def submit(
        self,
        project_id: str,
        project_name: str,
        build_dir: str,
        idempotency_key: str | None,
        action: str = "deploy",
        owner: str | None = None,
        exposure_policy: str | None = None,
    ) -> tuple[Deployment, bool]:
        """(deployment, created). The same key with the same request returns the first
        deployment; with a different request raises Conflict."""

    @abc.abstractmethod
    def get(self, deployment_id: str) -> Deployment | None: ...

    @abc.abstractmethod
    def list_deployments(self, project_id: str | None = None, limit: int = 100) -> list[Deployment]:
        """Newest first."""

    @abc.abstractmethod
    def claim(self, worker: str, max_running: int) -> Deployment | None:
        """Atomically move the oldest queued deployment to running (attempt + 1) if fewer than
        `max_running` run in total and no other deployment of its project runs; else None.
        PostgreSQL: FOR UPDATE SKIP LOCKED, so replicas never claim the same row."""

    @abc.abstractmethod
    def update(self, deployment_id: str, patch: Patch) -> Deployment:
        """Set the patch's dashboard fields; updated_at is set."""

    @abc.abstractmethod
    def requeue(self, deployment_id: str) -> Deployment:
        """A terminal (failed/cancelled/unhealthy) deployment back to queued for a new attempt."""

    @abc.abstractmethod
    def running(self) -> list[Deployment]: ...

    # -- events -----------------------------------------------------------------------------
    @abc.abstractmethod
    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """One batch, one transaction, O(1) per event."""

    @abc.abstractmethod
    def events(
        self, deployment_id: str, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEvent]: ...

    # -- sealed secrets -----------------------------------------------------------------------
    @abc.abstractmethod
    def put_sealed(self, project_id: str, key: str, sealed: str) -> None: ...

    @abc.abstractmethod
    def get_sealed(self, project_id: str) -> dict[str, str]: ...

    # -- hook replay protection ---------------------------------------------------------------
    @abc.abstractmethod
    def remember_signature(self, signature: str, expires_at: float) -> bool:
        """False if this signature was seen before (a replay); old entries are pruned."""


# ---- the launcher -------------------------------------------------------------------------------
def check_attempt(deployment_id: str, attempt: int) -> tuple[DeploymentId, int]:
    """(deployment id, attempt) when both are well formed; else ValueError naming which."""
    checked = runner_events.deployment_id(deployment_id)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt!r}")
    return checked, attempt


def attempt_name(deployment_id: str, attempt: int) -> str:
    """`forge-deploy-<deployment id>-<attempt>`: what every launcher names an attempt's runner
    (container, process folder, the Job when it fits), deterministic and distinct per attempt."""
    check_attempt(deployment_id, attempt)
    return f"forge-deploy-{deployment_id}-{attempt}"


@dataclass(frozen=True)
class RunSpec:
    deployment_id: DeploymentId
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
        return attempt_name(self.deployment_id, self.attempt)


@dataclass(frozen=True)
class Handle:
    launcher: str  # "process" | "docker" | "kubernetes"
    deployment_id: DeploymentId
    attempt: int
    ref: str  # pid, container id, Job name


@dataclass(frozen=True)
class Exit:
    code: int | None  # None: unknown (lost)
    reason: str | None = None  # "oom-killed", "deadline", "cancelled", "lost", ... when known


class Launcher(abc.ABC):
    """One runner per attempt: `launch`, `stream`, `wait`, `terminate`, `health`, plus what a
    restarted dispatcher needs to reconcile (`running`, `remove`). A launcher turns a `RunSpec`
    into its backend's spec with a pure function (unit-tested) and does the effect in a thin
    layer; names are `attempt_name`, so a retried launch finds what an earlier call made.

    The optional capabilities have defaults here, so the core calls them on any launcher:
    `recorded` (a copy of the output apart from the backend's log), `reproduce_command` (the
    command line that replays an attempt by hand), `unavailable` (the backend away for now)."""

    name: str
    backend = "launcher"  # what it launches on, in the log's words ("Docker engine")

    def unavailable(self, error: BaseException) -> str | None:
        """Why the backend cannot be reached for now, when `error` says so (the call is then
        waited out and tried again: every call here is idempotent); None for a real error."""
        return None

    def recorded(self, handle: Handle) -> list[str]:
        """The runner's own copy of its event lines so far, where the backend keeps one apart
        from the log `stream` reads (Docker: a file in the attempt's folder, which a killed
        engine cannot lose); empty where the log itself is the durable record."""
        return []

    def reproduce_command(self, spec: RunSpec) -> str | None:
        """A shell command that starts the same runner by hand, or None (no such line)."""
        return None

    @abc.abstractmethod
    def launch(self, spec: RunSpec) -> Handle:
        """Start the runner; idempotent for one (deployment, attempt)."""

    @abc.abstractmethod
    def stream(self, handle: Handle) -> Iterator[str]:
        """The runner's stdout lines from the start, following until it exits."""

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
