"""The hook's guard: every request outside the open paths is signed (`dispatcher.core.signing`),
fresh and not a replay, and its body is within the limit, before anything parses it.

`HookGuard`, the ASGI middleware, does the effects: it reads the body (refusing one over the
limit, 413), checks its signature, remembers it (a captured request cannot be sent again), and
only then lets the app parse anything. /healthz, /metrics and the OpenAPI document are open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.errors import error_response, store_unavailable
from dispatcher.core.errors import StoreUnavailable
from dispatcher.core.signing import WINDOW_S, AuthError, check

log = logging.getLogger("forge.dispatcher.api")

# -- the ASGI guard ---------------------------------------------------------------------------

OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"})
# Build bundles for Kubernetes init containers: the signed, short-lived token in the path is
# their authentication (dispatcher/bundles.py).
# /ui/: the pages, which check their own session cookie (dispatcher.ui.links).
OPEN_PREFIXES = ("/v1/bundles/", "/ui/")


class HookGuard:
    """Before anything parses a request: its body is at most `max_body_bytes` (Content-Length
    checked first, streamed bytes counted too: 413), and every request outside `OPEN_PATHS`
    is signed, fresh and not a replay (401). The body read here is handed on unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: bytes,
        max_body_bytes: int,
        clock: Callable[[], float],
        remember: Callable[[str, float], Awaitable[bool]],
        on_refused: Callable[[str], None],
        window_s: float = WINDOW_S,
        open_paths: frozenset[str] = OPEN_PATHS,
    ) -> None:
        self.app = app
        self.secret = secret
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.remember = remember
        self.on_refused = on_refused
        self.window_s = window_s
        self.open_paths = open_paths

    def _too_large(self) -> JSONResponse:
        return error_response(
            413, "body_too_large", f"request body is larger than {self.max_body_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await error_response(400, "bad_request", "Content-Length is not a number")(
                    scope, receive, send
                )
                return
            if int(length) > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before it finished sending
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        path = scope["path"]
        if path not in self.open_paths and not path.startswith(OPEN_PREFIXES):
            refused = await self._refuse(headers, body)
            if refused is not None:
                await refused(scope, receive, send)
                return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, headers: Headers, body: bytes) -> JSONResponse | None:
        try:
            verified = check(headers, body, self.secret, self.clock(), self.window_s)
        except AuthError as e:
            self.on_refused(e.reason)
            return error_response(401, e.reason, e.message)
        try:
            fresh = await self.remember(verified.signature, verified.expires_at)
        except StoreUnavailable as e:  # here, outside the app: its error handlers never see it
            log.warning("store unavailable checking a request's signature: %s", e)
            return store_unavailable()
        if not fresh:
            self.on_refused("replayed")
            return error_response(401, "replayed", "this signature was used before (a replay)")
        return None
