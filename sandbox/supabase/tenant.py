"""A project's own API (the real `https://<ref>.supabase.co`), mounted on the apps server under
`/sb/<ref>`, behind the `apikey` gateway (`api_auth.api_key`): the three version endpoints
`supabase link` reads, PostgREST's root document (`rest_openapi`) and tables
(`sandbox.supabase.rest`), GoTrue's `GET /auth/v1/user`, and the auth service's public keys
(`/auth/v1/.well-known/jwks.json`, which needs no API key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.context import Context
from sandbox.supabase import signing, views
from sandbox.supabase.api_auth import ApiKey, GatewayRefused, api_key, user_response
from sandbox.supabase.rest import rest_handler
from sandbox.supabase.rest_openapi import rest_root
from sandbox.supabase.state import SupabaseState, status

Handler = Callable[[Request, dict[str, Any], ApiKey], Awaitable[Response]]


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status_code)


def tenant_routes(ctx: Context, state: SupabaseState) -> list[BaseRoute]:
    def up(request: Request) -> dict[str, Any] | Response:
        """The project, or the answer when it is unknown (404) or not up (503)."""
        project = state.get(request.path_params["ref"])
        if project is None:
            return _error(404, "Project not found")
        current = status(project, ctx.clock.now())
        if current != "ACTIVE_HEALTHY":
            return _error(503, f"Project is not available: its status is {current}")
        return project

    def gateway(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """404 unknown project, 503 while it is not up, 401 without a key it lets in."""

        async def guarded(request: Request) -> Response:
            project = up(request)
            if isinstance(project, Response):
                return project
            try:
                key = api_key(request, project)
            except GatewayRefused as e:
                return e.response()
            return await handler(request, project, key)

        return guarded

    async def jwks(request: Request) -> Response:
        project = up(request)
        if isinstance(project, Response):
            return project
        return JSONResponse(signing.jwks(project["keys"]))

    async def auth_health(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        return JSONResponse(
            {
                "version": views.GOTRUE_VERSION,
                "name": "GoTrue",
                "description": "GoTrue is a user registration and authentication API",
            }
        )

    async def storage_version(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        return PlainTextResponse(views.STORAGE_VERSION)

    async def auth_user(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        return user_response(request, project, key)

    async def not_found(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
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
        Route(f"{base}/auth/v1/.well-known/jwks.json", jwks, methods=["GET"]),
        Route(f"{base}/auth/v1/health", gateway(auth_health), methods=["GET"]),
        Route(f"{base}/auth/v1/user", gateway(auth_user), methods=["GET"]),
        Route(f"{base}/storage/v1/version", gateway(storage_version), methods=["GET"]),
        Route(f"{base}/{{rest:path}}", gateway(not_found)),
    ]
