"""Every error the API answers is JSON, `{"error": {"code", "message"}}`, with a stable code
and a message naming the problem; never a traceback, never the request's input echoed back
(a 1 MB string stays on the caller's side), never a secret.

The core's errors are answered here, each in one way: an unknown deployment 404, a refusal of
the policy or a reused Idempotency-Key 409, a build directory outside the root 422, the store
away 503 with `Retry-After`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dispatcher.core.builds import BuildDirError
from dispatcher.core.errors import (
    Conflict,
    InvalidTransition,
    Refused,
    StoreUnavailable,
    UnknownDeployment,
)

log = logging.getLogger("forge.dispatcher.api")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
}
_FASTAPI_UNREADABLE = "There was an error parsing the body"  # FastAPI's words for it
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}


def validation_message(errors: list[Any]) -> tuple[str, str]:
    """(code, message) for FastAPI's validation errors; never echoes the input."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "JSON decode error")
            return "invalid_json", f"request body is not valid JSON: {detail}"
        if loc == ["body"] and err.get("type") in _NOT_AN_OBJECT:
            return "invalid_request", (
                "request body must be a JSON object {project_id, project_name, build_dir,"
                " exposure_policy?} "
                "sent as application/json"
            )
        if err.get("type") == "extra_forbidden":
            parts.append(f"{'.'.join(loc)}: unknown field")
        else:
            parts.append(f"{'.'.join(loc)}: {err.get('msg', 'invalid')}")
    return "invalid_request", "; ".join(parts) or "invalid request"


def store_unavailable() -> JSONResponse:
    """A store outage (`StoreUnavailable`): the request can be sent again shortly."""
    message = "the dispatcher's store is unavailable for now; try again shortly"
    return error_response(503, "store_unavailable", message, {"Retry-After": "2"})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = validation_message(list(exc.errors()))
        return error_response(422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = str(exc.detail)
        if exc.status_code == 400 and message == _FASTAPI_UNREADABLE:
            code = "invalid_json"
            message = "request body cannot be parsed as JSON (not UTF-8, or nested too deeply)"
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(UnknownDeployment)
    async def unknown(_: Request, exc: UnknownDeployment) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return error_response(409, exc.code, exc.message)

    @app.exception_handler(InvalidTransition)
    async def moved_on(_: Request, exc: InvalidTransition) -> JSONResponse:
        return error_response(409, "invalid_transition", str(exc))  # its state changed meanwhile

    @app.exception_handler(Conflict)
    async def key_reused(_: Request, exc: Conflict) -> JSONResponse:
        message = "this Idempotency-Key was used with a different request"
        return error_response(409, "idempotency_conflict", message)

    @app.exception_handler(BuildDirError)
    async def bad_build_dir(_: Request, exc: BuildDirError) -> JSONResponse:
        return error_response(422, "bad_build_dir", str(exc))

    @app.exception_handler(StoreUnavailable)
    async def away(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return store_unavailable()

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
            exc_info=exc,
        )  # fmt: skip
        return error_response(500, "internal", "internal error; the dispatcher's log has it")
