"""/v1/deployments: queue, list, read, and the actions (cancel, retry, teardown). Each route is
one call of the front door; its errors are answered by `dispatcher.api.errors`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, Header, Query, Response

from dispatcher.api.routes.common import CONFLICT, NOT_FOUND, REFUSALS, SIGNED, public
from dispatcher.api.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    CreateDeployment,
    DeploymentList,
    DeploymentOut,
)
from dispatcher.core.deployments import Deployments
from dispatcher.model import Deployment
from dispatcher.web.params import PROJECT_ID_PATTERN, DeploymentIdPath

# path suffix → summary; the front door's method of the same name does it
ACTIONS = {
    "cancel": "Cancel a queued or running deployment",
    "retry": "Queue a new attempt of a failed, cancelled or unhealthy deployment",
    "teardown": "Queue a teardown of the deployment's project; returns the teardown deployment",
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Optional. The same key with the same body returns the first deployment (200); "
            "with another body, 409."
        ),
    ),
]


def add_routes(app: FastAPI, deployments: Deployments) -> None:
    @app.post(
        "/v1/deployments",
        dependencies=SIGNED,
        status_code=202,
        response_model=DeploymentOut,
        responses={
            200: {"model": DeploymentOut, "description": "Replay of an Idempotency-Key"},
            **CONFLICT,
            **REFUSALS,
        },
        summary="Queue a deploy",
    )
    def create_deployment(
        body: CreateDeployment, response: Response, idempotency_key: IdempotencyKey = None
    ) -> DeploymentOut:
        dep, created = deployments.submit(
            body.project_id,
            body.project_name,
            body.build_dir,
            idempotency_key,
            exposure_policy=body.exposure_policy,
        )
        if not created:
            response.status_code = 200
        return public(dep)

    @app.get(
        "/v1/deployments",
        dependencies=SIGNED,
        response_model=DeploymentList,
        responses=REFUSALS,
        summary="List deployments, newest first",
    )
    def list_deployments(
        project_id: Annotated[str | None, Query(max_length=128, pattern=PROJECT_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> DeploymentList:
        found = deployments.newest(project_id, limit=limit)
        return DeploymentList(deployments=[public(d) for d in found])

    @app.get(
        "/v1/deployments/{deployment_id}",
        dependencies=SIGNED,
        response_model=DeploymentOut,
        responses={**NOT_FOUND, **REFUSALS},
        summary="One deployment: status, step, URLs, health",
    )
    def get_deployment(deployment_id: DeploymentIdPath) -> DeploymentOut:
        return public(deployments.get(deployment_id))

    for name, summary in ACTIONS.items():
        app.add_api_route(
            f"/v1/deployments/{{deployment_id}}/{name}",
            _action(getattr(deployments, name)),
            methods=["POST"],
            dependencies=SIGNED,
            name=name,
            status_code=202,
            response_model=DeploymentOut,
            responses={**NOT_FOUND, **CONFLICT, **REFUSALS},
            summary=summary,
        )


def _action(do: Callable[[str], Deployment]) -> Callable[[str], DeploymentOut]:
    def act(deployment_id: DeploymentIdPath) -> DeploymentOut:
        return public(do(deployment_id))

    return act
