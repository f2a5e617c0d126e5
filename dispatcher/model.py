"""The dispatcher's vocabulary: deployment statuses, the dashboard-facing deployment row, the
stored event. No secret is ever a field of these."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum, StrEnum
from functools import cached_property
from typing import Any, Final

from runner.events import DeploymentId


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    LIVE = "live"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.LIVE, Status.UNHEALTHY, Status.FAILED, Status.CANCELLED})
# Ended without going live: such a deployment may be queued again for a new attempt.
RETRYABLE = frozenset({Status.FAILED, Status.CANCELLED, Status.UNHEALTHY})


@dataclass(frozen=True)
class Deployment:
    id: DeploymentId  # "dep_" + 24 hex
    project_id: str
    project_name: str
    build_dir: str
    status: Status
    attempt: int  # 0 while queued for the first time; 1.. once launched
    created_at: str  # ISO 8601 UTC
    updated_at: str
    idempotency_key: str | None = None
    step: str | None = None  # the step running now (or the last one)
    app_url: str | None = None
    repo_url: str | None = None
    database_url: str | None = None
    health: dict[str, Any] | None = None
    error: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False
    action: str = "deploy"  # deploy | teardown
    claimed_by: str | None = None  # the replica running it
    exposure_policy: str | None = None  # "warn" | "fail" for its runner; None: the runner's own

    def public(self) -> dict[str, Any]:
        """The API's JSON shape."""
        return {
            "id": self.id,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "build_dir": self.build_dir,
            "status": self.status.value,
            "action": self.action,
            "attempt": self.attempt,
            "step": self.step,
            "urls": {"app": self.app_url, "repo": self.repo_url, "database": self.database_url},
            "health": self.health,
            "error": self.error,
            "exit_code": self.exit_code,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "cancel_requested": self.cancel_requested,
            "exposure_policy": self.exposure_policy,
        }


@dataclass(frozen=True)
class StoredEvent:
    """One runner event as kept: `id` rises by one per deployment across attempts (the SSE id)."""

    deployment_id: str
    id: int
    attempt: int
    type: str
    ts: str
    payload: dict[str, Any] = field(default_factory=dict)
    runner_seq: int | None = None  # the runner's own seq; None for events the dispatcher made

    @cached_property
    def json(self) -> str:
        """`public()` as JSON text, made once: every watcher of the event shares it."""
        return json.dumps(self.public(), separators=(",", ":"), ensure_ascii=False)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attempt": self.attempt,
            "type": self.type,
            "ts": self.ts,
            "seq": self.runner_seq,
            "payload": self.payload,
        }


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET  # a Patch field left alone (None sets the column to NULL)


@dataclass(frozen=True)
class Patch:
    """A change to a deployment's dashboard fields, typed; `Store.update` writes the fields that
    are set and `updated_at`. An unknown field is a TypeError at construction."""

    status: Status | _Unset = UNSET
    step: str | _Unset | None = UNSET
    app_url: str | _Unset | None = UNSET
    repo_url: str | _Unset | None = UNSET
    database_url: str | _Unset | None = UNSET
    health: dict[str, Any] | _Unset | None = UNSET
    error: str | _Unset | None = UNSET
    exit_code: int | _Unset | None = UNSET
    started_at: datetime | str | _Unset | None = UNSET
    finished_at: datetime | str | _Unset | None = UNSET
    cancel_requested: bool | _Unset = UNSET

    def fields(self) -> dict[str, Any]:
        """The fields that are set, by column name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not UNSET
        }

    def __bool__(self) -> bool:
        return bool(self.fields())
