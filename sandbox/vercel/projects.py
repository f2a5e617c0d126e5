"""Projects: list (search, pagination), create (409 on a taken name), get, update, delete,
domains, custom environments and protection bypass secrets.

`POST /v11/projects` takes no `nodeVersion` (its body has `additionalProperties: false`); `PATCH
/v9/projects/{idOrName}` does. A new project gets today's Node and protection (`today`) unless
the body sets `ssoProtection` (null: none)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.vercel import today
from sandbox.vercel.auth import endpoint
from sandbox.vercel.env import build_vars
from sandbox.vercel.errors import VercelError, json_object, query_int
from sandbox.vercel.render import FRAMEWORKS, PROJECT_SETTINGS, project_json
from sandbox.vercel.state import VercelState, check_project_name, new_id

SSO_TYPES = ("all", "preview", "prod_deployment_urls_and_all_previews", "all_except_custom_domains")
BYPASS_SECRET = re.compile(r"^[A-Za-z0-9]{32}$")


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    """The project settings present in `body`, validated."""
    out: dict[str, Any] = {}
    for key in PROJECT_SETTINGS:
        if key in body:
            value = body[key]
            if value is not None and not isinstance(value, str):
                raise VercelError(400, f"Invalid request: `{key}` should be string", "bad_request")
            out[key] = value
    if "framework" in body:
        framework = body["framework"]
        if framework is not None and framework not in FRAMEWORKS:
            raise VercelError(
                400, f"Invalid request: `framework` {framework!r} is not supported", "bad_request"
            )
        out["framework"] = framework
    if "nodeVersion" in body:
        if body["nodeVersion"] not in today.NODE_VERSIONS:
            raise VercelError(
                400,
                f"Invalid request: `nodeVersion` must be one of {', '.join(today.NODE_VERSIONS)}",
                "bad_request",
            )
        out["nodeVersion"] = body["nodeVersion"]
    if "ssoProtection" in body:
        out["ssoProtection"] = _sso(body["ssoProtection"])
    return out


def _sso(raw: object) -> dict[str, str] | None:
    if raw is None:
        return None
    kind = raw.get("deploymentType") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or set(raw) != {"deploymentType"} or kind not in SSO_TYPES:
        raise VercelError(
            400,
            "Invalid request: `ssoProtection` should be null or "
            f"{{deploymentType: one of {', '.join(SSO_TYPES)}}}",
            "bad_request",
        )
    return {"deploymentType": str(kind)}


def create_project(state: VercelState, data: dict[str, Any], name: str, **settings: Any) -> Any:
    """Insert a project into `data` (inside a store change); 409 when the name is taken."""
    if any(p["name"] == name for p in data["projects"].values()):
        raise VercelError(
            409, f'A project with the name "{name}" already exists.', "conflict", projectName=name
        )
    now = state.now_ms()
    latest = max((p["createdAt"] for p in data["projects"].values()), default=0)
    created = max(now, latest + 1)
    defaults = state.ctx.vercel_defaults
    project: dict[str, Any] = {
        "id": new_id("prj_", 28),
        "name": name,
        "createdAt": created,
        "updatedAt": created,
        "framework": None,
        "defaults": defaults,
        **today.NEW_PROJECT[defaults],
        "protectionBypass": {},
        "env": [],
        "aliasRequests": [],
    }
    for key in PROJECT_SETTINGS:
        project[key] = None
    project.update(settings)
    data["projects"][project["id"]] = project
    return project


def delete_project(state: VercelState, data: dict[str, Any], project: dict[str, Any]) -> None:
    del data["projects"][project["id"]]
    gone = [d for d, dep in data["deployments"].items() if dep["projectId"] == project["id"]]
    for deployment_id in gone:
        del data["deployments"][deployment_id]
    for alias in [a for a, rec in data["aliases"].items() if rec["projectId"] == project["id"]]:
        del data["aliases"][alias]


def routes(state: VercelState) -> list[Route]:
    async def list_projects(request: Request) -> Response:
        search = request.query_params.get("search", "").lower()
        limit = max(1, min(query_int(request, "limit", 20) or 20, 100))
        before = query_int(request, "from") or query_int(request, "until")
        projects = sorted(state.projects.values(), key=lambda p: p["createdAt"], reverse=True)
        if search:
            projects = [p for p in projects if search in p["name"].lower()]
        if before is not None:
            projects = [p for p in projects if p["createdAt"] < before]
        page = projects[:limit]
        more = len(projects) > limit
        now = state.now_ms()
        return JSONResponse(
            {
                "projects": [project_json(state, p, now) for p in page],
                "pagination": {
                    "count": len(page),
                    "next": page[-1]["createdAt"] if more and page else None,
                    "prev": None,
                },
            }
        )

    async def create(request: Request) -> Response:
        body = await json_object(request)
        name = check_project_name(body.get("name"))
        if "nodeVersion" in body and request.url.path.startswith("/v11/"):
            raise VercelError(
                400,
                "Invalid request: should NOT have additional property `nodeVersion`.",
                "bad_request",
            )
        settings = _settings(body)
        variables = body.get("environmentVariables") or []
        with state.store.change() as data:
            project = create_project(state, data, name, **settings)
            if variables:
                try:
                    project["env"] = build_vars(state, variables, project["id"])
                except VercelError:
                    del data["projects"][project["id"]]
                    raise
        return JSONResponse(project_json(state, project, state.now_ms()))

    async def get(request: Request) -> Response:
        project = state.project(request.path_params["idOrName"])
        return JSONResponse(project_json(state, project, state.now_ms()))

    async def update(request: Request) -> Response:
        body = await json_object(request)
        settings = _settings(body)
        with state.store.change() as data:
            project = state.project(request.path_params["idOrName"])
            if "name" in body and body["name"] != project["name"]:
                name = check_project_name(body["name"])
                if any(p["name"] == name for p in data["projects"].values()):
                    raise VercelError(
                        409, f'A project with the name "{name}" already exists.', "conflict"
                    )
                project["name"] = name
            project.update(settings)
            project["updatedAt"] = max(state.now_ms(), project["updatedAt"])
        return JSONResponse(project_json(state, project, state.now_ms()))

    async def delete(request: Request) -> Response:
        with state.store.change() as data:
            project = state.project(request.path_params["idOrName"])
            delete_project(state, data, project)
        return Response(status_code=204)

    async def domains(request: Request) -> Response:
        project = state.project(request.path_params["idOrName"])
        domain = {
            "name": state.production_alias(project["name"]),
            "apexName": state.ctx.urls.apps_hostport,
            "projectId": project["id"],
            "verified": True,
            "redirect": None,
            "gitBranch": None,
            "customEnvironmentId": None,
            "createdAt": project["createdAt"],
            "updatedAt": project["createdAt"],
        }
        return JSONResponse(
            {"domains": [domain], "pagination": {"count": 1, "next": None, "prev": None}}
        )

    async def protection_bypass(request: Request) -> Response:
        """`{generate: {secret?}}` adds an automation bypass secret, `{revoke: {secret}}` drops
        one; answers the project's `protectionBypass`."""
        body = await json_object(request)
        generate, revoke = body.get("generate"), body.get("revoke")
        with state.store.change():
            project = state.project(request.path_params["idOrName"])
            bypass: dict[str, Any] = project.setdefault("protectionBypass", {})
            if isinstance(generate, dict):
                secret = generate.get("secret") or secrets.token_hex(16)
                if not isinstance(secret, str) or not BYPASS_SECRET.match(secret):
                    raise VercelError(
                        400,
                        "Invalid request: `secret` should be 32 letters or digits",
                        "bad_request",
                    )
                bypass[secret] = {
                    "createdAt": state.now_ms(),
                    "createdBy": state.user_id,
                    "scope": "automation-bypass",
                }
            elif isinstance(revoke, dict) and isinstance(revoke.get("secret"), str):
                if bypass.pop(revoke["secret"], None) is None:
                    raise VercelError(404, "Protection bypass secret not found", "not_found")
            else:
                raise VercelError(
                    400, "Invalid request: the body needs `generate` or `revoke`", "bad_request"
                )
        return JSONResponse({"protectionBypass": bypass})

    async def custom_environments(request: Request) -> Response:
        state.project(request.path_params["idOrName"])
        return JSONResponse({"environments": []})

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(state, handler), methods=[method])

    return [
        r("/v10/projects", list_projects, "GET"),
        r("/v9/projects", list_projects, "GET"),
        r("/v11/projects", create, "POST"),
        r("/v1/projects", create, "POST"),
        r("/v9/projects/{idOrName}", get, "GET"),
        r("/v9/projects/{idOrName}", update, "PATCH"),
        r("/v9/projects/{idOrName}", delete, "DELETE"),
        r("/v2/projects/{idOrName}", delete, "DELETE"),
        r("/v9/projects/{idOrName}/domains", domains, "GET"),
        r("/v1/projects/{idOrName}/protection-bypass", protection_bypass, "PATCH"),
        r("/projects/{idOrName}/custom-environments", custom_environments, "GET"),
        r("/v9/projects/{idOrName}/custom-environments", custom_environments, "GET"),
    ]
