"""Reading and managing deployments: get (by id or url), list (v6/v7), delete, cancel, and the
aliases of a deployment."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.vercel import lifecycle
from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError, json_object, query_int
from sandbox.vercel.render import deployment_json, deployment_list_item
from sandbox.vercel.state import VercelState, new_id

STATES = ("QUEUED", "BUILDING", "ERROR", "INITIALIZING", "READY", "CANCELED")
ALIAS = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def current_aliases(state: VercelState, deployment: dict[str, Any], now: int) -> list[Any]:
    """The aliases that point at `deployment` right now (production alias included)."""
    found: list[dict[str, Any]] = []
    project = state.projects.get(deployment["projectId"])
    if project is not None:
        current = lifecycle.current_production(
            project, state.project_deployments(project["id"]), now
        )
        if current is not None and current["id"] == deployment["id"]:
            found.append(
                {
                    "uid": f"alias_prod_{project['id'].removeprefix('prj_')}",
                    "alias": state.production_alias(project["name"]),
                    "created": _iso(deployment["aliasAt"]),
                    "redirect": None,
                }
            )
    for record in state.aliases.values():
        if record["deploymentId"] == deployment["id"]:
            found.append(
                {
                    "uid": record["uid"],
                    "alias": record["alias"],
                    "created": _iso(record["created"]),
                    "redirect": None,
                }
            )
    return found


def routes(state: VercelState) -> list[Route]:
    async def get(request: Request) -> Response:
        deployment = state.deployment(request.path_params["idOrUrl"])
        return JSONResponse(deployment_json(state, deployment, state.now_ms()))

    async def list_deployments(request: Request) -> Response:
        now = state.now_ms()
        items = sorted(state.deployments.values(), key=lambda d: d["createdAt"], reverse=True)
        project_ref = request.query_params.get("projectId") or request.query_params.get("app")
        if project_ref:
            project = state.find_project(project_ref)
            items = [d for d in items if project and d["projectId"] == project["id"]]
        project_ids = request.query_params.get("projectIds")
        if project_ids:
            wanted = set(project_ids.split(","))
            items = [d for d in items if d["projectId"] in wanted]
        target = request.query_params.get("target")
        if target:
            want = None if target == "preview" else target
            items = [d for d in items if d.get("target") == want]
        states = request.query_params.get("state")
        if states:
            wanted_states = {s.strip().upper() for s in states.split(",")}
            items = [d for d in items if lifecycle.ready_state(d, now) in wanted_states]
        until = query_int(request, "until") or query_int(request, "to")
        since = query_int(request, "since") or query_int(request, "from")
        if until is not None:
            items = [d for d in items if d["createdAt"] < until]
        if since is not None:
            items = [d for d in items if d["createdAt"] > since]
        limit = max(1, min(query_int(request, "limit", 20) or 20, 100))
        page, more = items[:limit], len(items) > limit
        return JSONResponse(
            {
                "deployments": [deployment_list_item(state, d, now) for d in page],
                "pagination": {
                    "count": len(page),
                    "next": page[-1]["createdAt"] if more and page else None,
                    "prev": page[0]["createdAt"] if page and until is not None else None,
                },
            }
        )

    async def delete(request: Request) -> Response:
        with state.store.change() as data:
            deployment = state.deployment(request.path_params["id"])
            del data["deployments"][deployment["id"]]
            for alias in [
                a for a, r in data["aliases"].items() if r["deploymentId"] == deployment["id"]
            ]:
                del data["aliases"][alias]
        return JSONResponse({"uid": deployment["id"], "state": "DELETED"})

    async def cancel(request: Request) -> Response:
        with state.store.change():
            deployment = state.deployment(request.path_params["id"])
            now = state.now_ms()
            current = lifecycle.ready_state(deployment, now)
            if current in ("QUEUED", "BUILDING"):
                deployment["canceledAt"] = now
            elif current != "CANCELED":
                raise VercelError(
                    400, f"The deployment cannot be canceled: it is {current}", "bad_request"
                )
        return JSONResponse(deployment_json(state, deployment, state.now_ms()))

    async def list_aliases(request: Request) -> Response:
        deployment = state.deployment(request.path_params["id"])
        return JSONResponse({"aliases": current_aliases(state, deployment, state.now_ms())})

    async def assign_alias(request: Request) -> Response:
        body = await json_object(request)
        alias = body.get("alias")
        if not isinstance(alias, str) or not ALIAS.match(alias.lower()):
            raise VercelError(
                400, "Invalid request: `alias` should be a lowercase host name", "bad_request"
            )
        alias = alias.lower()
        with state.store.change() as data:
            deployment = state.deployment(request.path_params["id"])
            if lifecycle.ready_state(deployment, state.now_ms()) != "READY":
                raise VercelError(400, "The deployment is not READY yet", "deployment_not_ready")
            previous = data["aliases"].get(alias)
            if previous and previous["projectId"] != deployment["projectId"]:
                raise VercelError(
                    409, f"The alias {alias} is used by another project", "alias_in_use"
                )
            record = {
                "uid": previous["uid"] if previous else new_id("", 24),
                "alias": alias,
                "deploymentId": deployment["id"],
                "projectId": deployment["projectId"],
                "created": state.now_ms(),
            }
            data["aliases"][alias] = record
        answer: dict[str, Any] = {
            "uid": record["uid"],
            "alias": alias,
            "created": _iso(record["created"]),
        }
        if previous:
            answer["oldDeploymentId"] = previous["deploymentId"]
        return JSONResponse(answer)

    async def builds(request: Request) -> Response:
        state.deployment(request.path_params["id"])
        return JSONResponse({"builds": []})

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(state, handler), methods=[method])

    return [
        r("/v13/deployments/{idOrUrl:path}", get, "GET"),
        r("/v6/deployments", list_deployments, "GET"),
        r("/v7/deployments", list_deployments, "GET"),
        r("/v13/deployments/{id}", delete, "DELETE"),
        r("/v12/deployments/{id}/cancel", cancel, "PATCH"),
        r("/v11/deployments/{id}/builds", builds, "GET"),
        r("/v2/deployments/{id}/aliases", list_aliases, "GET"),
        r("/v2/deployments/{id}/aliases", assign_alias, "POST"),
    ]
