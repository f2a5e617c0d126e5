"""/v1/deployments: queue, list, read, and the actions (cancel, retry, teardown)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, Header, Query, Response

from dispatcher.api.errors import ApiError
from dispatcher.api.routes.common import (
    CONFLICT,
    NOT_FOUND,
    REFUSALS,
    SIGNED,
    ApiSettings,
    Control,
    DeploymentId,
    existing,
    public,
)
from dispatcher.api.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    PROJECT_ID_PATTERN,
    CreateDeployment,
    DeploymentList,
    DeploymentOut,
)
from dispatcher.builds import BuildDirError, resolve_build_dir
from dispatcher.core.policy import Refused
from dispatcher.model import Deployment
from dispatcher.store.base import Conflict, Store

# path suffix → summary; the Control method of the same name does it
ACTIONS = {
    "cancel": "Cancel a queued or running deployment",
    "retry": "Queue a new attempt of a failed, cancelled or unhealthy deployment",
    "teardown": "Queue a teardown of the deployment's project; returns the teardown deployment",
}


def add_routes(app: FastAPI, store: Store, control: Control, settings: ApiSettings) -> None:

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
        dependencies=SIGNED,
        response_model=DeploymentList,
        responses=REFUSALS,
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
        dependencies=SIGNED,
        response_model=DeploymentOut,
        responses={**NOT_FOUND, **REFUSALS},
        summary="One deployment: status, step, URLs, health",
    )
    def get_deployment(deployment_id: DeploymentId) -> DeploymentOut:
        return public(existing(store, deployment_id))

    for name, summary in ACTIONS.items():
        app.add_api_route(
            f"/v1/deployments/{{deployment_id}}/{name}",
            _action(store, getattr(control, name)),
            methods=["POST"],
            dependencies=SIGNED,
            name=name,
            status_code=202,
            response_model=DeploymentOut,
            responses={**NOT_FOUND, **CONFLICT, **REFUSALS},
            summary=summary,
        )


def _action(store: Store, do: Callable[[str], Deployment]) -> Callable[[str], DeploymentOut]:
    def act(deployment_id: DeploymentId) -> DeploymentOut:
        existing(store, deployment_id)
        try:
            return public(do(deployment_id))
        except Refused as e:
            raise ApiError(409, e.code, e.message) from e
        except LookupError as e:
            raise ApiError(404, "not_found", f"no deployment {deployment_id!r}") from e

    return act
