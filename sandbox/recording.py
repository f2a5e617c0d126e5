"""Traffic recording: every request and answer of the emulators, one JSON line each.

Enabled with `forge-sandbox serve --record`; tests replay the log through the providers'
OpenAPI documents. Authorization headers are never written, and secret values in bodies (passwords,
API keys, env var values) are replaced by a placeholder of the same type.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_KEEP_REQUEST_HEADERS = (
    "content-type",
    "accept",
    "x-now-digest",
    "x-vercel-digest",
    "x-client-info",
    "x-github-api-version",
)
_MAX_BODY = 1 << 20
_SECRET_KEYS = frozenset({"db_pass", "password", "api_key", "value", "token", "secret"})
REDACTED = "<redacted>"


def redact(document: Any, secret: bool = False) -> Any:
    """`document` with every string under a secret key, or in an `env` name->value map, replaced."""
    if isinstance(document, dict):
        return {
            key: redact(
                value,
                secret or key in _SECRET_KEYS or (key == "env" and isinstance(value, dict)),
            )
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [redact(item, secret) for item in document]
    if secret and isinstance(document, str):
        return REDACTED
    return document


def _decode(body: bytes, content_type: str) -> Any:
    return redact(_parse(body, content_type))


def _parse(body: bytes, content_type: str) -> Any:
    if len(body) > _MAX_BODY:
        return {"_truncated": len(body)}
    if "stream+json" in content_type or "ndjson" in content_type:
        try:
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError:
            return {"_undecodable": len(body)}
    if "json" in content_type:
        try:
            return json.loads(body) if body else None
        except ValueError:
            return {"_undecodable": len(body)}
    return {"_bytes": len(body)} if body else None


class Recorder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        with self._lock, self.path.open("a") as fh:
            fh.write(line + "\n")


class RecordingMiddleware:
    def __init__(self, app: ASGIApp, service: str, recorder: Recorder) -> None:
        self.app = app
        self.service = service
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_body = bytearray()
        response_body = bytearray()
        response: dict[str, Any] = {}
        written = False

        def record() -> None:
            nonlocal written
            if written:
                return
            written = True
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            response_headers: dict[str, str] = response.get("headers", {})
            self.recorder.write(
                {
                    "service": self.service,
                    "method": scope["method"],
                    "path": scope["path"],
                    "query": scope["query_string"].decode("latin-1"),
                    "request_headers": {
                        k: v for k, v in headers.items() if k in _KEEP_REQUEST_HEADERS
                    },
                    "request_body": _decode(bytes(request_body), headers.get("content-type", "")),
                    "status": response.get("status"),
                    "response_headers": response_headers,
                    "response_body": _decode(
                        bytes(response_body), response_headers.get("content-type", "")
                    ),
                }
            )

        async def recv() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(request_body) <= _MAX_BODY:
                request_body.extend(message.get("body", b""))
            return message

        async def snd(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
                if message["status"] in (204, 304) or scope["method"] == "HEAD":
                    record()  # the client has its whole answer once the headers leave
            elif message["type"] == "http.response.body":
                if len(response_body) <= _MAX_BODY:
                    response_body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    # Written before the last byte leaves, so a client that has its answer
                    # always finds the exchange in the log.
                    record()
            await send(message)

        try:
            await self.app(scope, recv, snd)
        finally:
            record()
