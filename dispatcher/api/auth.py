"""The hook's authentication, the webhook convention: a shared secret signs each request.

    X-Forge-Timestamp: <unix seconds>
    X-Forge-Signature: sha256=<hex HMAC-SHA256(FORGE_HOOK_SECRET, "<timestamp>.<raw body>")>

The raw body is the exact bytes sent (empty for GET). The signature is compared in constant
time, the timestamp must be within five minutes of the dispatcher's clock, and a signature is
accepted once: the store remembers it until it would have gone stale anyway, so a captured
request cannot be sent again. Two bodiless requests in the same second would carry the same
signature, so the timestamp may have a fraction (`1700000000.123456`): clients that send
several GETs a second use one (`sign` does when given a float).

`check` is pure (headers, body, secret, now → the signature to remember, or AuthError);
`HookGuard`, the ASGI middleware, does the effects: it reads the body (refusing one over the
limit, 413), checks it, remembers the signature, and only then lets the app parse anything.
/healthz, /metrics and the OpenAPI document are open; every other path needs a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.errors import error_response

TIMESTAMP_HEADER = "X-Forge-Timestamp"
SIGNATURE_HEADER = "X-Forge-Signature"
WINDOW_S = 300.0

_TIMESTAMP = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_SIGNATURE = re.compile(r"^sha256=[0-9a-f]{64}$")


class AuthError(Exception):
    """Why a request is refused. `reason` is a stable code (and a metrics label)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Verified:
    signature: str  # "sha256=<hex>", to remember against replays
    expires_at: float  # unix seconds after which the timestamp is stale anyway


def _format_timestamp(timestamp: float | int | str) -> str:
    if isinstance(timestamp, str):
        return timestamp
    if isinstance(timestamp, float):
        return f"{timestamp:.6f}"
    return str(timestamp)


def signature_for(secret: bytes, body: bytes, timestamp: str) -> str:
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def sign(secret: bytes, body: bytes, timestamp: float | int | str) -> dict[str, str]:
    """The two headers that authenticate `body` sent at `timestamp` (unix seconds; a float
    keeps microseconds, so bodiless requests in one second still differ)."""
    stamp = _format_timestamp(timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature_for(secret, body, stamp)}


def check(
    headers: Mapping[str, str], body: bytes, secret: bytes, now: float, window_s: float = WINDOW_S
) -> Verified:
    """The verified signature, or AuthError: missing, bad_timestamp, stale, bad_signature.
    (Replays are the caller's check: `Store.remember_signature(verified.signature, ...)`.)"""
    stamp = headers.get(TIMESTAMP_HEADER.lower()) or headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER.lower()) or headers.get(SIGNATURE_HEADER)
    if not stamp or not given:
        missing = [
            name
            for name, value in ((TIMESTAMP_HEADER, stamp), (SIGNATURE_HEADER, given))
            if not value
        ]
        raise AuthError("missing", f"request is not signed: {' and '.join(missing)} missing")
    if not _TIMESTAMP.match(stamp):
        raise AuthError("bad_timestamp", f"{TIMESTAMP_HEADER} must be unix seconds")
    when = float(stamp)
    if not math.isfinite(when) or abs(now - when) > window_s:
        raise AuthError(
            "stale",
            f"{TIMESTAMP_HEADER} is more than {int(window_s)} s away from the dispatcher's clock",
        )
    if not _SIGNATURE.match(given):
        raise AuthError("bad_signature", f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>")
    expected = signature_for(secret, body, stamp)
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
        raise AuthError("bad_signature", "signature does not match the body and timestamp")
    return Verified(signature=given, expires_at=when + window_s)


# -- the ASGI guard ---------------------------------------------------------------------------

OPEN_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"})
# Build bundles for Kubernetes init containers: the signed, short-lived token in the path is
# their authentication (dispatcher/bundles.py).
OPEN_PREFIXES = ("/bundles/",)


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
        if not await self.remember(verified.signature, verified.expires_at):
            self.on_refused("replayed")
            return error_response(401, "replayed", "this signature was used before (a replay)")
        return None
