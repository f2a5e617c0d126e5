"""A project's own API (the real `https://<ref>.supabase.co`), mounted on the apps server under
`/sb/<ref>`, behind the `apikey` gateway: the three version endpoints `supabase link` reads,
PostgREST's root document (`rest_openapi`) and tables (`sandbox.supabase.rest`), and GoTrue's
`GET /auth/v1/user`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.context import Context
from sandbox.supabase import views
from sandbox.supabase.api_auth import user_response
from sandbox.supabase.keys import all_keys
from sandbox.supabase.rest import rest_handler
from sandbox.supabase.rest_openapi import rest_root
from sandbox.supabase.state import SupabaseState, status

Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


def _error(status_code: int, message: str, hint: str | None = None) -> JSONResponse:
    body = {"message": message}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status_code)


def tenant_routes(ctx: Context, state: SupabaseState) -> list[BaseRoute]:
    def gateway(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """404 unknown project, 503 while it is not up, 401 without one of its keys."""

        async def guarded(request: Request) -> Response:
            project = state.get(request.path_params["ref"])
            if project is None:
                return _error(404, "Project not found")
            current = status(project, ctx.clock.now())
            if current != "ACTIVE_HEALTHY":
                return _error(503, f"Project is not available: its status is {current}")
            given = request.headers.get("apikey") or request.query_params.get("apikey")
            if not given:
                return _error(
                    401,
                    "No API key found in request",
                    "No `apikey` request header or url param was found.",
                )
            if not any(hmac.compare_digest(given, key) for key in all_keys(project["keys"])):
                return _error(
                    401,
                    "Invalid API key",
                    "Double check your Supabase `anon` or `service_role` API key.",
                )
            return await handler(request, project)

        return guarded

    async def auth_health(request: Request, project: dict[str, Any]) -> Response:
        return JSONResponse(
            {
                "version": views.GOTRUE_VERSION,
                "name": "GoTrue",
                "description": "GoTrue is a user registration and authentication API",
            }
        )

    async def storage_version(request: Request, project: dict[str, Any]) -> Response:
        return PlainTextResponse(views.STORAGE_VERSION)

    async def auth_user(request: Request, project: dict[str, Any]) -> Response:
        return user_response(request, project["keys"])

    async def not_found(request: Request, project: dict[str, Any]) -> Response:
        return _error(404, "no Route matched with those values")

    base = "/sb/{ref}"
    return [
        Route(f"{base}/rest/v1/", gateway(rest_root(ctx)), methods=["GET", "HEAD"]),
        Route(f"{base}/rest/v1", gateway(rest_root(ctx)), methods=["GET", "HEAD"]),
        Route(
            f"{base}/rest/v1/{{table}}",
            gateway(rest_handler(ctx)),
            methods=["GET", "HEAD", "POST", "PATCH", "DELETE"],
        ),
        Route(f"{base}/auth/v1/health", gateway(auth_health), methods=["GET"]),
        Route(f"{base}/auth/v1/user", gateway(auth_user), methods=["GET"]),
        Route(f"{base}/storage/v1/version", gateway(storage_version), methods=["GET"]),
        Route(f"{base}/{{rest:path}}", gateway(not_found)),
    ]
