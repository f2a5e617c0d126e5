"""The dispatcher's web app: `create_app(deployments, settings)` puts the HTTP API
(`dispatcher.api`) and the pages (`dispatcher.ui`) side by side over one front door.

    POST /v1/deployments                  queue a deploy (Idempotency-Key: same key, same one)
    GET  /v1/deployments[?project_id=&limit=]
    GET  /v1/deployments/{id}
    GET  /v1/deployments/{id}/events      SSE (Last-Event-ID resumes), or JSON lines
    POST /v1/deployments/{id}/cancel | retry | teardown
    GET  /healthz                         unauthenticated: liveness and store reachability
    GET  /metrics                         unauthenticated: Prometheus text, no secret in it
    GET  /ui/...                          the pages, under their own session (`dispatcher.ui`)
    GET  /favicon.ico                     unauthenticated: the pages' icon

FastAPI serves the OpenAPI document at /openapi.json. Every /v1 request is signed
(`dispatcher.api.auth`) and at most `max_body_bytes` long; both are checked before the body is
parsed, so a refused request creates nothing. Every error is JSON, `{"error": {"code",
"message"}}`, and never a traceback or a secret (`dispatcher.api.errors`).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from dispatcher.api import auth, routes
from dispatcher.api.errors import install_error_handlers
from dispatcher.core.deployments import Deployments
from dispatcher.ui.routes import favicon
from dispatcher.ui.routes import router as ui_router
from dispatcher.web.metrics import RequestMetrics
from dispatcher.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]


def create_app(deployments: Deployments, settings: WebSettings) -> FastAPI:
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
        return await run_in_threadpool(deployments.remember_signature, signature, expires_at)

    app.add_middleware(
        auth.HookGuard,
        secret=settings.hook_secret,
        max_body_bytes=settings.max_body_bytes,
        clock=settings.clock,
        window_s=settings.window_s,
        open_paths=auth.OPEN_PATHS | {"/favicon.ico"},
        remember=remember,
        on_refused=lambda reason: settings.metrics.hook_auth_failures.labels(reason).inc(),
    )
    app.add_middleware(RequestMetrics, metrics=settings.metrics, routes=lambda: app.routes)
    routes.add_routes(app, deployments, settings)
    app.include_router(ui_router(deployments, settings))
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    return app
