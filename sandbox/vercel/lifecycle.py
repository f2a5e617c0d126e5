"""A deployment's life, computed from the timestamps stored at creation (pure functions).

QUEUED until `buildingAt`, BUILDING until `readyAt`, then READY (ERROR for a build that failed,
`buildError`: see `buildcheck`); `aliasAssigned` from
`aliasAt`. A cancel stores `canceledAt`. The production alias of a project follows a history
of events: each auto-assigning production deployment takes it at its `aliasAt`, each promote or
rollback request at its `effectiveAt`; the latest event that has happened and whose deployment
still exists wins.
"""

from __future__ import annotations

from typing import Any

TERMINAL = ("READY", "CANCELED", "ERROR")


def ready_state(deployment: dict[str, Any], now: int) -> str:
    canceled = deployment.get("canceledAt")
    if canceled is not None and now >= canceled:
        return "CANCELED"
    if now < deployment["buildingAt"]:
        return "QUEUED"
    if now < deployment["readyAt"]:
        return "BUILDING"
    return "ERROR" if deployment.get("buildError") else "READY"


def alias_assigned(deployment: dict[str, Any], now: int) -> bool:
    return ready_state(deployment, now) == "READY" and now >= deployment["aliasAt"]


def production_history(
    project: dict[str, Any], deployments: list[dict[str, Any]]
) -> list[tuple[int, int, str]]:
    """(effective time, tie-breaker, deployment id) events, oldest first."""
    events: list[tuple[int, int, str]] = []
    for deployment in deployments:
        if (
            deployment.get("target") == "production"
            and deployment.get("autoAssignCustomDomains", True)
            and deployment.get("canceledAt") is None
        ):
            events.append((deployment["aliasAt"], deployment["createdAt"], deployment["id"]))
    for request in project.get("aliasRequests", []):
        events.append((request["effectiveAt"], request["requestedAt"], request["toDeploymentId"]))
    events.sort()
    return events


def current_production(
    project: dict[str, Any], deployments: list[dict[str, Any]], now: int
) -> dict[str, Any] | None:
    by_id = {d["id"]: d for d in deployments}
    for effective, _, deployment_id in reversed(production_history(project, deployments)):
        deployment = by_id.get(deployment_id)
        if effective <= now and deployment and ready_state(deployment, now) == "READY":
            return deployment
    return None


def has_held_production(
    deployment: dict[str, Any], project: dict[str, Any], deployments: list[dict[str, Any]], now: int
) -> bool:
    return any(
        effective <= now and deployment_id == deployment["id"]
        for effective, _, deployment_id in production_history(project, deployments)
    )


def ready_substate(
    deployment: dict[str, Any], project: dict[str, Any], deployments: list[dict[str, Any]], now: int
) -> str | None:
    if deployment.get("target") != "production" or ready_state(deployment, now) != "READY":
        return None
    return "PROMOTED" if has_held_production(deployment, project, deployments, now) else "STAGED"


def alias_request_status(request: dict[str, Any], now: int) -> str:
    return "succeeded" if now >= request["effectiveAt"] else "in-progress"


def _event(deployment: dict[str, Any], index: int, at: int, kind: str, text: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": kind,
        "created": at,
        "date": at,
        "deploymentId": deployment["id"],
        "id": f"{deployment['id'].removeprefix('dpl_')}-{index}",
        "serial": f"{at}{index:06d}",
        "text": text,
        "info": {"type": "build", "name": deployment["buildId"], "entrypoint": "."},
    }
    if kind == "stderr":
        event["level"] = "error"
    return event


def build_log(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event the build will ever write, in order (filter by `created` to see the past)."""
    created, building, ready = (
        deployment["createdAt"],
        deployment["buildingAt"],
        deployment["readyAt"],
    )
    settings = deployment.get("projectSettings") or {}
    lines: list[tuple[int, str, str]] = [
        (created, "deployment-state", "Deployment state: QUEUED"),
        (building, "deployment-state", "Deployment state: BUILDING"),
        (building, "stdout", "Running build in Washington, D.C., USA (East) - iad1"),
        (
            building,
            "stdout",
            f"Retrieving list of deployment files... {len(deployment['files'])} files",
        ),
        (building, "command", 'Running "vercel build"'),
    ]
    if settings.get("buildCommand"):
        lines.append((building, "command", f'Running "{settings["buildCommand"]}"'))
    seconds = max(0.0, (ready - building) / 1000)
    if deployment.get("buildError"):
        lines += [
            (ready, "stderr", f"Error: {deployment['buildError']}"),
            (ready, "deployment-state", "Deployment state: ERROR"),
        ]
    else:
        lines += [
            (ready, "stdout", f"Build Completed in /vercel/output [{seconds:.1f}s]"),
            (ready, "stdout", "Deploying outputs..."),
            (ready, "deployment-state", "Deployment state: READY"),
        ]
    canceled = deployment.get("canceledAt")
    if canceled is not None:
        lines = [line for line in lines if line[0] < canceled]
        lines.append((canceled, "deployment-state", "Deployment state: CANCELED"))
    return [_event(deployment, i, at, kind, text) for i, (at, kind, text) in enumerate(lines)]
