"""Vercel's error shape, `{"error": {"code", "message", ...}}`, and the request helpers that
turn bad input into it (never a 500 for what a client sent)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

CODES = {
    400: "bad_request",
    401: "forbidden",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_unknown",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
}


class VercelError(Exception):
    """An answer other than success; `extra` fields go into the `error` object."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or code_for(status)
        self.extra = extra


def code_for(status: int) -> str:
    if status in CODES:
        return CODES[status]
    return "internal_server_error" if status >= 500 else "bad_request"


def error_body(status: int, message: str) -> dict[str, Any]:
    """The body Vercel answers with for `status` (also used by the sandbox's fault injection)."""
    error: dict[str, Any] = {"code": code_for(status), "message": message}
    if status == 429:
        reset = time.time() + 60
        error["limit"] = {
            "remaining": 0,
            "reset": int(reset),
            "resetMs": int(reset * 1000),
            "total": 100,
        }
    return {"error": error}


def error_response(err: VercelError) -> JSONResponse:
    body = error_body(err.status, err.message)
    body["error"]["code"] = err.code
    body["error"].update(err.extra)
    headers = {}
    if err.status == 429:
        reset = body["error"]["limit"]["reset"]
        headers["retry-after"] = str(max(1, int(reset - time.time())))
        headers["x-ratelimit-limit"] = str(body["error"]["limit"]["total"])
        headers["x-ratelimit-remaining"] = "0"
        headers["x-ratelimit-reset"] = str(reset)
    return JSONResponse(body, status_code=err.status, headers=headers)


def not_found(what: str) -> VercelError:
    return VercelError(404, f"{what} not found", "not_found")


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The request's JSON document; 400 bad_request when it is malformed (or absent)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise VercelError(400, "Invalid request: missing JSON body", "bad_request")
        return {}
    try:
        return json.loads(raw)
    except ValueError as e:
        raise VercelError(400, f"Invalid JSON in request body: {e}", "bad_request") from e


async def json_object(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = await json_body(request, required=required)
    if not isinstance(body, dict):
        raise VercelError(400, "Invalid request: the body must be a JSON object", "bad_request")
    return body


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise VercelError(400, f"Invalid request: `{key}` should be string", "bad_request")
    return value


def query_int(request: Request, key: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(float(raw))
    except ValueError as e:
        raise VercelError(400, f"Invalid query: `{key}` should be a number", "bad_request") from e


def query_flag(request: Request, key: str) -> bool:
    return request.query_params.get(key, "").lower() in ("1", "true", "yes")
