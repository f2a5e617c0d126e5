"""The hook's signature, the webhook convention: a shared secret signs each request.

    X-Forge-Timestamp: <unix seconds>
    X-Forge-Signature: sha256=<hex HMAC-SHA256(FORGE_HOOK_SECRET, "<timestamp>.<raw body>")>

The raw body is the exact bytes sent (empty for GET). The signature is compared in constant
time, the timestamp must be within five minutes of the dispatcher's clock, and a signature is
accepted once (the caller remembers it: `Store.remember_signature`). Two bodiless requests in
the same second would carry the same signature, so the timestamp may have a fraction
(`1700000000.123456`): `sign` writes one when given a float.

`check` is pure (headers, body, secret, now -> the signature to remember, or AuthError); the
HTTP layer (`dispatcher.api.auth.HookGuard`), the status callbacks and the client use it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

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
