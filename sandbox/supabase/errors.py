"""Errors in the Management API's shape (`{"message": ...}`) and request parsing."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """Raised by handlers; rendered as `{"message": ...}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no such route) in the provider's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, f"Cannot {request.method} {request.url.path}")
    return error_response(exc.status_code, str(exc.detail))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """A fault of the emulator itself (e.g. PostgreSQL gone): still the provider's shape."""
    return error_response(500, f"Internal server error: {type(exc).__name__}")


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 for anything else."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, "Request body is required")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise ApiError(400, f"Unexpected token in JSON body: {e}") from e
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"property {unknown[0]} should not exist")


def string_field(body: dict[str, Any], name: str, *, required: bool, max_len: int = 0) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    if required and not value.strip():
        raise ApiError(400, f"{name} should not be empty")
    if max_len and len(value) > max_len:
        raise ApiError(400, f"{name} must be shorter than or equal to {max_len} characters")
    return value


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ApiError(400, f"{name} must be an integer number") from e
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value
