"""The sandbox's own control surface (on the apps port, under /_admin): faults, time scale and
the inventory of everything that exists. Bearer-authenticated with the sandbox's admin token."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.context import Context, Service
from sandbox.faults import FaultBook, FaultRuleError

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def guarded(ctx: Context, handler: Handler) -> Handler:
    """`handler`, answering 401 unless the request carries the sandbox's admin token."""
    expected = f"Bearer {ctx.identity.admin_token}".encode()

    async def wrapper(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "admin token required")
        return await handler(request)

    return wrapper


def admin_routes(ctx: Context, services: list[Service]) -> list[Route]:
    async def read_json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError as e:
            raise FaultRuleError(f"body is not valid JSON: {e}") from e

    async def faults(request: Request) -> Response:
        try:
            if request.method == "PUT":
                ctx.faults.replace(FaultBook.parse(await read_json(request)))
            elif request.method == "POST":
                ctx.faults.extend(FaultBook.parse(await read_json(request)))
        except FaultRuleError as e:
            return _error(400, str(e))
        return JSONResponse(ctx.faults.to_json())

    async def time_scale(request: Request) -> Response:
        if request.method == "PUT":
            try:
                body = await read_json(request)
                scale = float(body["scale"])
            except (FaultRuleError, KeyError, TypeError, ValueError):
                return _error(400, 'body must be {"scale": <number >= 0>}')
            if scale < 0:
                return _error(400, "scale must be >= 0")
            ctx.clock.scale = scale
        return JSONResponse({"scale": ctx.clock.scale})

    async def resources(request: Request) -> Response:
        return JSONResponse({service.name: service.resources() for service in services})

    return [
        Route("/_admin/faults", guarded(ctx, faults), methods=["GET", "PUT", "POST"]),
        Route("/_admin/time-scale", guarded(ctx, time_scale), methods=["GET", "PUT"]),
        Route("/_admin/resources", guarded(ctx, resources), methods=["GET"]),
    ]
