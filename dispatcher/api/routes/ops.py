"""The unsigned routes: /healthz, /metrics, and /v1/bundles/{token} (the build a Kubernetes
runner's init container fetches, authorised by the token itself)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from dispatcher import bundles
from dispatcher.api.metrics import CONTENT_TYPE, render
from dispatcher.api.routes.common import ApiSettings
from dispatcher.api.schemas import Health
from dispatcher.core.metrics import DeploymentsByStatus
from dispatcher.model import Status
from dispatcher.store.base import Store

log = logging.getLogger("forge.dispatcher.api")


def _count_by_status(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for dep in store.list_deployments(None, limit=1_000_000):
        counts[dep.status.value] = counts.get(dep.status.value, 0) + 1
    return counts


def add_routes(app: FastAPI, store: Store, settings: ApiSettings) -> None:
    store_registry = CollectorRegistry(auto_describe=True)
    store_registry.register(DeploymentsByStatus(lambda: _count_by_status(store)))

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

        def build_dir_of(deployment_id: str, attempt: int) -> Path | None:
            dep = store.get(deployment_id)
            if dep is None or dep.attempt != attempt or dep.status is not Status.RUNNING:
                return None
            return Path(dep.build_dir)

        @app.get(
            "/v1/bundles/{token}",
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
