"""What the dispatcher keeps, behind one interface (written once in `dispatcher.store.sql`,
on SQLite or PostgreSQL). Every method is a short transaction; no row holds a secret (sealed
values live in their own table and are opaque without the dispatcher's private key)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.model import Deployment, Patch, StoredEvent


@dataclass(frozen=True)
class NewEvent:
    """An event to append; the store assigns the per-deployment `id`."""

    attempt: int
    type: str
    ts: str
    payload: dict[str, Any]
    runner_seq: int | None = None


class Conflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class Store(abc.ABC):
    @abc.abstractmethod
    def migrate(self) -> None:
        """Apply the shipped migrations not yet applied (idempotent, concurrency-safe)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        """`tell(error)` whenever a kept connection is found broken (a PostgreSQL restart the
        pool met before any call failed); a store with no such connections never calls it."""
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
