"""The dispatcher's HTTP API: `create_app(store, control, settings)` builds the FastAPI app.

Routes (FastAPI serves the OpenAPI document at /openapi.json):

    POST /v1/deployments                  queue a deploy (Idempotency-Key: same key, same one)
    GET  /v1/deployments[?project_id=&limit=]
    GET  /v1/deployments/{id}
    GET  /v1/deployments/{id}/events      SSE (Last-Event-ID resumes), or JSON lines
    POST /v1/deployments/{id}/cancel | retry | teardown
    GET  /healthz                         unauthenticated: liveness and store reachability
    GET  /metrics                         unauthenticated: Prometheus text, no secret in it

Every /v1 request is signed (`dispatcher.api.auth`) and at most `max_body_bytes` long; both are
checked before the body is parsed, so a refused request creates nothing. Every error is JSON,
`{"error": {"code", "message"}}`, and never a traceback or a secret. What the API asks of the
rest of the dispatcher (wake the queue, cancel, retry, tear down, live events) is the `Control`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import FastAPI, Header, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CollectorRegistry
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dispatcher import bundles
from dispatcher.api import auth
from dispatcher.api.errors import ApiError, install_error_handlers
from dispatcher.api.metrics import CONTENT_TYPE, RequestMetrics, render
from dispatcher.api.schemas import (
    DEPLOYMENT_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    PROJECT_ID_PATTERN,
    CreateDeployment,
    DeploymentList,
    DeploymentOut,
    ErrorBody,
    Health,
)
from dispatcher.builds import BuildDirError, resolve_build_dir
from dispatcher.core import signing
from dispatcher.core.hub import Subscription, event_json, follow, stored_events
from dispatcher.core.metrics import METRICS, DeploymentsByStatus, Metrics
from dispatcher.core.policy import Refused
from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.store.base import Conflict, Store

log = logging.getLogger("forge.dispatcher.api")

NDJSON = "application/x-ndjson"
MAX_ID = 2**63 - 1  # what an SQLite / PostgreSQL bigint holds


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
    bundle_secret: bytes | None = field(default=None, repr=False)  # serves /bundles/{token}


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


# -- the app ----------------------------------------------------------------------------------

DeploymentId = Annotated[
    str,
    PathParam(
        pattern=DEPLOYMENT_ID_PATTERN,
        description="dep_ and 24 hex digits (any 1-64 of A-Z a-z 0-9 _ - is looked up)",
    ),
]
Responses = dict[int | str, dict[str, Any]]
_REFUSALS: Responses = {
    400: {"model": ErrorBody, "description": "Unreadable body or Content-Length"},
    401: {"model": ErrorBody, "description": "Not signed, stale, bad signature or replayed"},
    413: {"model": ErrorBody, "description": "Body larger than the limit"},
    422: {"model": ErrorBody, "description": "Invalid request; the message names the problem"},
}
_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such deployment"}}
_CONFLICT: Responses = {
    409: {"model": ErrorBody, "description": "The deployment's state forbids it"}
}


def _count_by_status(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for dep in store.list_deployments(None, limit=1_000_000):
        counts[dep.status.value] = counts.get(dep.status.value, 0) + 1
    return counts


def create_app(store: Store, control: Control, settings: ApiSettings) -> FastAPI:
    app = FastAPI(
        title="forge-dispatcher",
        version="1",
        description=(
            "Queue deploys of finished builds and follow them. Every /v1 request carries "
            "X-Forge-Timestamp and X-Forge-Signature (HMAC-SHA256 of '<timestamp>.<raw body>' "
            "with FORGE_HOOK_SECRET); /healthz and /metrics are open."
        ),
    )
    install_error_handlers(app)
    store_registry = CollectorRegistry(auto_describe=True)
    store_registry.register(DeploymentsByStatus(lambda: _count_by_status(store)))

    async def remember(signature: str, expires_at: float) -> bool:
        return await run_in_threadpool(store.remember_signature, signature, expires_at)

    app.add_middleware(
        auth.HookGuard,
        secret=settings.hook_secret,
        max_body_bytes=settings.max_body_bytes,
        clock=settings.clock,
        window_s=settings.window_s,
        remember=remember,
        on_refused=lambda reason: settings.metrics.hook_auth_failures.labels(reason).inc(),
    )
    app.add_middleware(RequestMetrics, metrics=settings.metrics, routes=lambda: app.routes)

    signed = [  # documentation only: HookGuard has checked both before routing
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

    def existing(deployment_id: str) -> Deployment:
        dep = store.get(deployment_id)
        if dep is None:
            raise ApiError(404, "not_found", f"no deployment {deployment_id!r}")
        return dep

    def public(dep: Deployment) -> DeploymentOut:
        return DeploymentOut.model_validate(dep.public())

    @app.post(
        "/v1/deployments",
        status_code=202,
        response_model=DeploymentOut,
        dependencies=signed,
        responses={
            200: {"model": DeploymentOut, "description": "Replay of an Idempotency-Key"},
            **_CONFLICT,
            **_REFUSALS,
        },
        summary="Queue a deploy",
    )
    def create_deployment(
        body: CreateDeployment,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                pattern=IDEMPOTENCY_KEY_PATTERN,
                description=(
                    "Optional. The same key with the same body returns the first deployment "
                    "(200); with another body, 409."
                ),
            ),
        ] = None,
    ) -> DeploymentOut:
        try:
            build_dir = resolve_build_dir(settings.builds_root, body.build_dir)
        except BuildDirError as e:
            raise ApiError(422, "bad_build_dir", str(e)) from e
        try:
            dep, created = store.submit(
                body.project_id, body.project_name, str(build_dir), idempotency_key
            )
        except Conflict as e:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was used with a different request",
            ) from e
        if created:
            control.wake()
        else:
            response.status_code = 200
        return public(dep)

    @app.get(
        "/v1/deployments",
        response_model=DeploymentList,
        dependencies=signed,
        responses=_REFUSALS,
        summary="List deployments, newest first",
    )
    def list_deployments(
        project_id: Annotated[str | None, Query(max_length=128, pattern=PROJECT_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> DeploymentList:
        deps = store.list_deployments(project_id, limit=limit)
        return DeploymentList(deployments=[public(d) for d in deps])

    @app.get(
        "/v1/deployments/{deployment_id}",
        response_model=DeploymentOut,
        dependencies=signed,
        responses={**_NOT_FOUND, **_REFUSALS},
        summary="One deployment: status, step, URLs, health",
    )
    def get_deployment(deployment_id: DeploymentId) -> DeploymentOut:
        return public(existing(deployment_id))

    @app.get(
        "/v1/deployments/{deployment_id}/events",
        dependencies=signed,
        response_class=Response,
        responses={
            200: {
                "description": (
                    "Server-Sent Events (id = event id, event = type, data = the event as "
                    "JSON), following until the deployment is over; or JSON lines"
                ),
                "content": {"text/event-stream": {}, NDJSON: {}},
            },
            **_NOT_FOUND,
            **_REFUSALS,
        },
        summary="The deployment's events",
    )
    async def deployment_events(
        request: Request,
        deployment_id: DeploymentId,
        format: Annotated[
            Literal["auto", "sse", "jsonl"],
            Query(description=f"auto: JSON lines when Accept names {NDJSON}, else SSE"),
        ] = "auto",
        follow_: Annotated[
            bool, Query(alias="follow", description="JSON lines: keep following, like SSE")
        ] = False,
        after: Annotated[
            int, Query(ge=0, le=MAX_ID, description="Only events with a larger id")
        ] = 0,
        last_event_id: Annotated[
            int,
            Header(alias="Last-Event-ID", ge=0, le=MAX_ID, description="SSE resume point"),
        ] = 0,
    ) -> Response:
        await run_in_threadpool(existing, deployment_id)
        start = max(after, last_event_id)
        accept = request.headers.get("accept", "")
        jsonl = format == "jsonl" or (format == "auto" and NDJSON in accept)

        def followed() -> AsyncIterator[StoredEvent]:
            return follow(
                store,
                lambda: control.subscribe(deployment_id),
                deployment_id,
                start,
                tick_s=settings.sse_tick_s,
            )

        if jsonl:
            source = followed() if follow_ else stored_events(store, deployment_id, start)

            async def lines() -> AsyncIterator[str]:
                async for event in source:
                    yield event_json(event) + "\n"

            return StreamingResponse(lines(), media_type=NDJSON)

        async def sse() -> AsyncIterator[ServerSentEvent]:
            async for event in followed():
                yield ServerSentEvent(data=event_json(event), id=str(event.id), event=event.type)

        return EventSourceResponse(sse(), ping=settings.sse_ping_s)

    def act(deployment_id: str, do: Callable[[str], Deployment]) -> DeploymentOut:
        existing(deployment_id)
        try:
            return public(do(deployment_id))
        except Refused as e:
            raise ApiError(409, e.code, e.message) from e
        except LookupError as e:
            raise ApiError(404, "not_found", f"no deployment {deployment_id!r}") from e

    action_responses: Responses = {**_NOT_FOUND, **_CONFLICT, **_REFUSALS}

    @app.post(
        "/v1/deployments/{deployment_id}/cancel",
        status_code=202,
        response_model=DeploymentOut,
        dependencies=signed,
        responses=action_responses,
        summary="Cancel a queued or running deployment",
    )
    def cancel(deployment_id: DeploymentId) -> DeploymentOut:
        return act(deployment_id, control.cancel)

    @app.post(
        "/v1/deployments/{deployment_id}/retry",
        status_code=202,
        response_model=DeploymentOut,
        dependencies=signed,
        responses=action_responses,
        summary="Queue a new attempt of a failed, cancelled or unhealthy deployment",
    )
    def retry(deployment_id: DeploymentId) -> DeploymentOut:
        return act(deployment_id, control.retry)

    @app.post(
        "/v1/deployments/{deployment_id}/teardown",
        status_code=202,
        response_model=DeploymentOut,
        dependencies=signed,
        responses=action_responses,
        summary="Queue a teardown of the deployment's project; returns the teardown deployment",
    )
    def teardown(deployment_id: DeploymentId) -> DeploymentOut:
        return act(deployment_id, control.teardown)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The store cannot be reached"}},
        summary="Liveness and store reachability (unauthenticated)",
    )
    def healthz() -> Any:
        try:
            store.list_deployments(None, limit=1)
        except Exception as e:  # noqa: BLE001 - any failure means "not healthy", and is reported
            log.warning("health check: store unreachable: %s", type(e).__name__)
            return JSONResponse(
                {"ok": False, "store": f"unreachable: {type(e).__name__}"}, status_code=503
            )
        return Health(ok=True, store="ok")

    if settings.bundle_secret is not None:
        bundle_secret = settings.bundle_secret

        def build_dir_of(deployment_id: str, attempt: int) -> Path | None:
            dep = store.get(deployment_id)
            if dep is None or dep.attempt != attempt or dep.status is not Status.RUNNING:
                return None
            return Path(dep.build_dir)

        @app.get(
            "/bundles/{token}",
            response_class=Response,
            include_in_schema=False,  # for the runner's init container, not for clients
        )
        def bundle(token: str) -> Response:
            try:
                data = bundles.serve_bundle(
                    token, secret=bundle_secret, build_dir_of=build_dir_of, now=time.time()
                )
            except bundles.BundleError as e:
                return JSONResponse(
                    {"error": {"code": "bundle", "message": str(e)}}, status_code=e.status
                )
            return Response(
                data, media_type="application/gzip", headers={"Cache-Control": "no-store"}
            )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}}},
        summary="Prometheus metrics (unauthenticated; no secret in them)",
    )
    def metrics() -> Response:
        return Response(render(settings.metrics, store_registry), media_type=CONTENT_TYPE)

    return app
