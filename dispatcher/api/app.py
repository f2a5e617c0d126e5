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
rest of the dispatcher (wake the queue, cancel, retry, tear down, live events) is the `Control`
(`dispatcher.api.routes.common`); the routes live in `dispatcher.api.routes`, one module each.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from dispatcher.api import auth
from dispatcher.api.errors import install_error_handlers
from dispatcher.api.metrics import RequestMetrics
from dispatcher.api.routes import deployments, events, ops
from dispatcher.api.routes.common import ApiSettings, Control
from dispatcher.store.base import Store
from dispatcher.ui.routes import router as ui_router

__all__ = ["ApiSettings", "Control", "create_app"]


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
    deployments.add_routes(app, store, control, settings)
    events.add_routes(app, store, control, settings)
    ops.add_routes(app, store, settings)
    app.include_router(ui_router(store, control, settings))
    return app
