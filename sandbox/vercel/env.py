"""Project environment variables: list (target filter, decrypt), create (object or array;
`upsert=true` overrides, otherwise an existing key+target is refused), get, edit, delete, and
the CLI's `env pull`."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError, json_body, json_object, query_flag
from sandbox.vercel.render import env_json
from sandbox.vercel.state import VercelState, new_id

TARGETS = ("production", "preview", "development")
TYPES = ("system", "secret", "encrypted", "plain", "sensitive")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")


def _bad(message: str) -> VercelError:
    return VercelError(400, f"Invalid request: {message}", "bad_request")


def _targets(raw: object) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise _bad("`target` should be one or more of production, preview, development")
    targets: list[str] = []
    for item in items:
        if item not in TARGETS:
            raise _bad(f"`target` {item!r} should be one of production, preview, development")
        if item not in targets:
            targets.append(item)
    return targets


def check_var(raw: object) -> dict[str, Any]:
    """The validated fields of one env var document (no id or timestamps)."""
    if not isinstance(raw, dict):
        raise _bad("each environment variable should be an object")
    key = raw.get("key")
    if not isinstance(key, str) or not KEY.match(key):
        raise _bad(
            "`key` should be a name of letters, digits and underscores, not starting with a digit"
        )
    value = raw.get("value")
    if not isinstance(value, str):
        raise _bad(f"`value` of {key} should be string")
    kind = raw.get("type", "encrypted")
    if kind not in TYPES:
        raise _bad(f"`type` should be one of {', '.join(TYPES)}")
    if raw.get("customEnvironmentIds"):
        raise VercelError(404, "Custom environment not found", "not_found")
    targets = _targets(raw.get("target"))
    if kind == "sensitive" and "development" in targets:
        raise _bad("sensitive environment variables cannot be created in the development target")
    branch = raw.get("gitBranch")
    if branch is not None and (not isinstance(branch, str) or targets != ["preview"]):
        raise _bad("`gitBranch` should be a string and requires target=preview only")
    comment = raw.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
        raise _bad("`comment` should be a string of at most 500 characters")
    return {
        "key": key,
        "value": value,
        "type": kind,
        "target": targets,
        "gitBranch": branch or None,
        "comment": comment or None,
    }


def build_vars(state: VercelState, items: object, project_id: str) -> list[dict[str, Any]]:
    """New env var records for a project being created (no conflict handling needed)."""
    if not isinstance(items, list):
        raise _bad("`environmentVariables` should be an array")
    return [_record(state, check_var(item)) for item in items]


def _record(state: VercelState, fields: dict[str, Any]) -> dict[str, Any]:
    now = state.now_ms()
    return {
        "id": new_id("", 16),
        **fields,
        "createdAt": now,
        "updatedAt": now,
        "createdBy": state.user_id,
        "updatedBy": state.user_id,
    }


def _conflicts(
    variables: list[dict[str, Any]], fields: dict[str, Any], skip: str | None = None
) -> list[dict[str, Any]]:
    return [
        var
        for var in variables
        if var["id"] != skip
        and var["key"] == fields["key"]
        and var.get("gitBranch") == fields["gitBranch"]
        and set(var["target"]) & set(fields["target"])
    ]


def _exists_error(fields: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    targets = ", ".join(t for t in fields["target"] if t in existing["target"])
    return {
        "code": "ENV_ALREADY_EXISTS",
        "message": f"A variable with the name `{fields['key']}` already exists for the target "
        f"{targets}.",
        "key": fields["key"],
        "envVarId": existing["id"],
        "target": fields["target"],
    }


def variables_for(project: dict[str, Any], target: str, branch: str | None = None) -> list[Any]:
    return [
        var
        for var in project.get("env", [])
        if target in var["target"] and (var.get("gitBranch") is None or var["gitBranch"] == branch)
    ]


def routes(state: VercelState) -> list[Route]:
    async def list_env(request: Request) -> Response:
        project = state.project(request.path_params["idOrName"])
        variables = list(project.get("env", []))
        target = request.query_params.get("target")
        if target:
            variables = [v for v in variables if target in v["target"]]
        branch = request.query_params.get("gitBranch")
        if branch:
            variables = [v for v in variables if v.get("gitBranch") in (None, branch)]
        decrypt = query_flag(request, "decrypt")
        envs = [env_json(v, decrypt=decrypt) for v in variables]
        return JSONResponse(
            {"envs": envs, "pagination": {"count": len(envs), "next": None, "prev": None}}
        )

    async def create(request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, (dict, list)) or (isinstance(body, list) and not body):
            raise _bad("the body should be an environment variable object or a non-empty array")
        items = [check_var(item) for item in (body if isinstance(body, list) else [body])]
        upsert = query_flag(request, "upsert")
        created: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        with state.store.change():
            project = state.project(request.path_params["idOrName"])
            variables: list[dict[str, Any]] = project.setdefault("env", [])
            for fields in items:
                conflicts = _conflicts(variables, fields)
                if conflicts and not upsert:
                    failed.append({"error": _exists_error(fields, conflicts[0])})
                    continue
                if conflicts:
                    var = conflicts[0]
                    var.update(fields, updatedAt=state.now_ms(), updatedBy=state.user_id)
                    for other in conflicts[1:]:
                        other["target"] = [t for t in other["target"] if t not in fields["target"]]
                    variables[:] = [v for v in variables if v["target"]]
                else:
                    var = _record(state, fields)
                    variables.append(var)
                created.append(var)
        if failed and not created:
            error = failed[0]["error"]
            raise VercelError(403, error.pop("message"), error.pop("code"), **error)
        rendered = [env_json(var, decrypt=False) for var in created]
        return JSONResponse(
            {"created": rendered if isinstance(body, list) else rendered[0], "failed": failed},
            status_code=201,
        )

    def find(project: dict[str, Any], env_id: str) -> dict[str, Any]:
        for var in project.get("env", []):
            if var["id"] == env_id:
                found: dict[str, Any] = var
                return found
        raise VercelError(404, "Environment Variable not found", "not_found")

    async def get(request: Request) -> Response:
        project = state.project(request.path_params["idOrName"])
        return JSONResponse(env_json(find(project, request.path_params["id"]), decrypt=True))

    async def edit(request: Request) -> Response:
        body = await json_object(request)
        with state.store.change():
            project = state.project(request.path_params["idOrName"])
            current = find(project, request.path_params["id"])
            merged = {**current, **{k: v for k, v in body.items() if k != "id"}}
            fields = check_var(merged)
            clash = _conflicts(project["env"], fields, skip=current["id"])
            if clash:
                error = _exists_error(fields, clash[0])
                raise VercelError(409, error.pop("message"), error.pop("code"), **error)
            current.update(fields, updatedAt=state.now_ms(), updatedBy=state.user_id)
        return JSONResponse(env_json(current, decrypt=False))

    async def delete(request: Request) -> Response:
        with state.store.change():
            project = state.project(request.path_params["idOrName"])
            var = find(project, request.path_params["id"])
            project["env"] = [v for v in project["env"] if v["id"] != var["id"]]
        return JSONResponse(env_json(var, decrypt=False))

    async def pull(request: Request) -> Response:
        project = state.project(request.path_params["idOrName"])
        target = request.path_params.get("target", "development")
        if target not in TARGETS:
            raise VercelError(404, f"Unknown environment {target!r}", "not_found")
        branch = request.query_params.get("gitBranch")
        env = {
            var["key"]: "" if var["type"] == "sensitive" else var["value"]
            for var in variables_for(project, target, branch)
        }
        return JSONResponse({"env": env})

    def r(path: str, handler: Any, method: str) -> Route:
        return Route(path, endpoint(state, handler), methods=[method])

    return [
        r("/v10/projects/{idOrName}/env", list_env, "GET"),
        r("/v10/projects/{idOrName}/env", create, "POST"),
        r("/v1/projects/{idOrName}/env/{id}", get, "GET"),
        r("/v9/projects/{idOrName}/env/{id}", edit, "PATCH"),
        r("/v9/projects/{idOrName}/env/{id}", delete, "DELETE"),
        r("/v3/env/pull/{idOrName}/{target}", pull, "GET"),
        r("/v3/env/pull/{idOrName}", pull, "GET"),
    ]
