"""The unsigned routes: /healthz, /metrics, and /v1/bundles/{token} (the build a Kubernetes
runner's init container fetches, authorised by the token itself)."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from dispatcher import bundles
from dispatcher.api.schemas import Health
from dispatcher.core.deployments import Deployments
from dispatcher.core.metrics import DeploymentsByStatus
from dispatcher.web.metrics import CONTENT_TYPE, render
from dispatcher.web.settings import WebSettings

log = logging.getLogger("forge.dispatcher.api")


def add_routes(app: FastAPI, deployments: Deployments, settings: WebSettings) -> None:
    store_registry = CollectorRegistry(auto_describe=True)
    store_registry.register(DeploymentsByStatus(deployments.count_by_status))

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The store cannot be reached"}},
        summary="Liveness and store reachability (unauthenticated)",
    )
    def healthz() -> Any:
        problem = deployments.health()
        if problem is not None:
            log.warning("health check: store %s", problem)
            return JSONResponse({"ok": False, "store": problem}, status_code=503)
        return Health(ok=True, store="ok")

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {}}}},
        summary="Prometheus metrics (unauthenticated; no secret in them)",
    )
    def metrics() -> Response:
        return Response(render(settings.metrics, store_registry), media_type=CONTENT_TYPE)

    if settings.bundle_secret is not None:
        bundle_secret = settings.bundle_secret

        @app.get(
            "/v1/bundles/{token}",
            response_class=Response,
            include_in_schema=False,  # for the runner's init container, not for clients
        )
        def bundle(token: str) -> Response:
            try:
                data = bundles.serve_bundle(
                    token,
                    secret=bundle_secret,
                    build_dir_of=deployments.bundle_dir,
                    now=time.time(),
                )
            except bundles.BundleError as e:
                return JSONResponse(
                    {"error": {"code": "bundle", "message": str(e)}}, status_code=e.status
                )
            return Response(
                data, media_type="application/gzip", headers={"Cache-Control": "no-store"}
            )
