"""Promote and rollback: point a project's production alias at an existing production
deployment, without a rebuild, after `vercel.promote` (scaled) seconds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.vercel import lifecycle
from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError, json_body
from sandbox.vercel.state import VercelState


def request_alias_change(
    state: VercelState, project_ref: str, deployment_ref: str, kind: str
) -> None:
    with state.store.change():
        project = state.project(project_ref)
        deployment = state.deployment(deployment_ref)
        if deployment["projectId"] != project["id"]:
            raise VercelError(400, "The deployment does not belong to this project", "bad_request")
        now = state.now_ms()
        if lifecycle.ready_state(deployment, now) != "READY":
            raise VercelError(400, "The deployment is not READY", "deployment_not_ready")
        if deployment.get("target") != "production":
            raise VercelError(
                400,
                "Only production deployments can be promoted directly; create a production "
                "deployment from it instead",
                "bad_request",
            )
        requests: list[dict[str, Any]] = project.setdefault("aliasRequests", [])
        if requests and lifecycle.alias_request_status(requests[-1], now) != "succeeded":
            raise VercelError(
                409,
                f"A {requests[-1]['type']} of this project is already in progress",
                "conflict",
            )
        current = lifecycle.current_production(
            project, state.project_deployments(project["id"]), now
        )
        requests.append(
            {
                "type": kind,
                "fromDeploymentId": current["id"] if current else "",
                "toDeploymentId": deployment["id"],
                "requestedAt": now,
                "effectiveAt": now + state.delay_ms("vercel.promote"),
            }
        )


def routes(state: VercelState) -> list[Route]:
    def alias_change(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            await json_body(request, required=False)
            params = request.path_params
            request_alias_change(state, params["projectId"], params["deploymentId"], kind)
            return Response(status_code=201)

        return handler

    return [
        Route(
            "/v10/projects/{projectId}/promote/{deploymentId}",
            endpoint(state, alias_change("promote")),
            methods=["POST"],
        ),
        Route(
            "/v1/projects/{projectId}/rollback/{deploymentId}",
            endpoint(state, alias_change("rollback")),
            methods=["POST"],
        ),
    ]
