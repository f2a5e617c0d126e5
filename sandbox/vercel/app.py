"""The Vercel REST API as one Starlette app: every module's routes plus Vercel-shaped answers
for unknown paths and methods."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sandbox.vercel import account, deploy, deployments, env, events, projects, promote
from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError, error_response
from sandbox.vercel.files import upload_file
from sandbox.vercel.ratelimit import UPLOAD_BUDGET
from sandbox.vercel.state import VercelState


def build_app(state: VercelState) -> Starlette:
    async def files(request: Request) -> Response:
        return await upload_file(state.files, request, state.ctx.clock.delay("vercel.upload"))

    upload = endpoint(state, files, budget=UPLOAD_BUDGET)
    routes: list[BaseRoute] = [
        *account.routes(state),
        *projects.routes(state),
        *env.routes(state),
        Route("/v2/files", upload, methods=["POST"]),
        Route("/v2/now/files", upload, methods=["POST"]),
        *deploy.routes(state),
        *deployments.routes(state),
        *events.routes(state),
        *promote.routes(state),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return error_response(
                VercelError(405, f"Method {request.method} is not supported here", "method_unknown")
            )
        if status == 404:
            return error_response(VercelError(404, "The requested path was not found", "not_found"))
        return error_response(VercelError(status, str(getattr(exc, "detail", "error"))))

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
