"""Management API: a project's API keys (`/api-keys`, `/api-keys/{id}`) and the switch of its
legacy JWT pair (`/api-keys/legacy`), as supabase-management.json describes them (`keys` holds
the rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.context import Context
from sandbox.supabase import keys, views
from sandbox.supabase.errors import ApiError, json_object
from sandbox.supabase.state import SupabaseState, iso, keys_ready


def _flag(request: Request, name: str, *, required: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, f"{name} must be a boolean value")
        return False
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, f"{name} must be a boolean value")
    return raw.lower() == "true"


class ApiKeyRoutes:
    def __init__(self, ctx: Context, state: SupabaseState) -> None:
        self.ctx = ctx
        self.state = state

    def _project(self, request: Request) -> dict[str, Any]:
        return views.require(self.state, request.path_params["ref"])

    def _edit(self, project: dict[str, Any], edit: Callable[[dict[str, Any]], Any]) -> Any:
        return self.state.change_keys(project["ref"], edit)

    async def list_keys(self, request: Request) -> Response:
        project = self._project(request)
        reveal = _flag(request, "reveal")
        if not keys_ready(project, self.ctx.clock.now()):
            # Keys are minted during provisioning; until then the list is empty.
            return JSONResponse([])
        return JSONResponse(keys.api_key_items(project["keys"], reveal))

    async def create_key(self, request: Request) -> Response:
        project = self._project(request)
        reveal = _flag(request, "reveal")
        body = await json_object(request)
        at = iso(self.ctx.clock.now())
        created = self._edit(project, lambda m: keys.create(m, body, at))
        return JSONResponse(keys.item(created, reveal), status_code=201)

    async def get_key(self, request: Request) -> Response:
        project = self._project(request)
        reveal = _flag(request, "reveal")
        return JSONResponse(keys.lookup(project["keys"], request.path_params["id"], reveal))

    async def update_key(self, request: Request) -> Response:
        project = self._project(request)
        reveal = _flag(request, "reveal")
        body = await json_object(request)
        at = iso(self.ctx.clock.now())
        key_id = request.path_params["id"]
        updated = self._edit(project, lambda m: keys.update(m, key_id, body, at))
        return JSONResponse(keys.item(updated, reveal))

    async def delete_key(self, request: Request) -> Response:
        project = self._project(request)
        reveal = _flag(request, "reveal")
        _flag(request, "was_compromised")
        key_id = request.path_params["id"]
        deleted = self._edit(project, lambda m: keys.delete(m, key_id))
        return JSONResponse(keys.item(deleted, reveal))

    async def legacy(self, request: Request) -> Response:
        project = self._project(request)
        if request.method == "PUT":
            enabled = _flag(request, "enabled", required=True)
            self._edit(project, lambda m: m.update(legacy_enabled=enabled))
            project = self._project(request)
        return JSONResponse({"enabled": bool(project["keys"]["legacy_enabled"])})

    def routes(self) -> list[Route]:
        base = "/v1/projects/{ref}/api-keys"
        return [
            Route(base, self.list_keys, methods=["GET"]),
            Route(base, self.create_key, methods=["POST"]),
            Route(f"{base}/legacy", self.legacy, methods=["GET", "PUT"]),
            Route(f"{base}/{{id}}", self.get_key, methods=["GET"]),
            Route(f"{base}/{{id}}", self.update_key, methods=["PATCH"]),
            Route(f"{base}/{{id}}", self.delete_key, methods=["DELETE"]),
        ]
