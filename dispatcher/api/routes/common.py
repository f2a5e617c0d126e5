"""What the routes share: the signature headers as documented, the path parameter, the error
responses, the deployment lookup and its JSON shape, and `Control`, what the API asks of the
core."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Path as PathParam
from fastapi import Security
from fastapi.security import APIKeyHeader

from dispatcher.api.errors import ApiError
from dispatcher.api.schemas import DEPLOYMENT_ID_PATTERN, DeploymentOut, ErrorBody
from dispatcher.core import signing
from dispatcher.core.hub import Subscription
from dispatcher.core.metrics import METRICS, Metrics
from dispatcher.model import Deployment
from dispatcher.store.base import Store


@dataclass(frozen=True)
class ApiSettings:
    hook_secret: bytes = field(repr=False)
    builds_root: Path
    max_body_bytes: int = 64 * 1024
    clock: Callable[[], float] = time.time  # unix seconds, for the signature window
    window_s: float = signing.WINDOW_S
    sse_tick_s: float = 1.0  # how often a quiet event stream looks at the deployment's status
    sse_ping_s: float = 15.0  # SSE keep-alive comments
    metrics: Metrics = field(default_factory=lambda: METRICS)
    bundle_secret: bytes | None = field(default=None, repr=False)  # serves /v1/bundles/{token}


class Control(Protocol):
    """What the API asks of the core (`dispatcher.core.service.Dispatcher`). Each method may
    raise `Refused` (409, the core's one policy: `dispatcher.core.policy`) or `LookupError`
    (404); none may block for long (they run on the API's threads)."""

    def wake(self) -> None:
        """A deployment was queued: let the workers look."""

    def cancel(self, deployment_id: str) -> Deployment:
        """Ask a queued or running deployment to stop; returns it as it is now."""

    def retry(self, deployment_id: str) -> Deployment:
        """Queue a new attempt of a failed, cancelled or unhealthy deployment (resuming)."""

    def teardown(self, deployment_id: str) -> Deployment:
        """Queue a teardown deployment of that deployment's project; returns the new one."""

    def subscribe(self, deployment_id: str) -> Subscription:
        """Live events of one deployment (`EventHub.subscribe`), on the calling event loop."""


DeploymentId = Annotated[
    str,
    PathParam(
        pattern=DEPLOYMENT_ID_PATTERN,
        description="dep_ and 24 hex digits (any 1-64 of A-Z a-z 0-9 _ - is looked up)",
    ),
]
Responses = dict[int | str, dict[str, Any]]
REFUSALS: Responses = {
    400: {"model": ErrorBody, "description": "Unreadable body or Content-Length"},
    401: {"model": ErrorBody, "description": "Not signed, stale, bad signature or replayed"},
    413: {"model": ErrorBody, "description": "Body larger than the limit"},
    422: {"model": ErrorBody, "description": "Invalid request; the message names the problem"},
}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such deployment"}}
CONFLICT: Responses = {
    409: {"model": ErrorBody, "description": "The deployment's state forbids it"}
}

# Documentation only: HookGuard has checked both headers before routing.
SIGNED = [
    Security(
        APIKeyHeader(
            name=signing.TIMESTAMP_HEADER,
            scheme_name="ForgeTimestamp",
            description="Unix seconds (a fraction allowed), within 300 s of the server",
            auto_error=False,
        )
    ),
    Security(
        APIKeyHeader(
            name=signing.SIGNATURE_HEADER,
            scheme_name="ForgeSignature",
            description=(
                "sha256=<hex HMAC-SHA256(FORGE_HOOK_SECRET, '<timestamp>.<raw body>')>; "
                "each signature is accepted once"
            ),
            auto_error=False,
        )
    ),
]


def existing(store: Store, deployment_id: str) -> Deployment:
    dep = store.get(deployment_id)
    if dep is None:
        raise ApiError(404, "not_found", f"no deployment {deployment_id!r}")
    return dep


def public(dep: Deployment) -> DeploymentOut:
    return DeploymentOut.model_validate(dep.public())
