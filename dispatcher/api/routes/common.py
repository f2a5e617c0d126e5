"""What the routes share: the signature headers as documented, the error responses, and a
deployment's JSON shape."""

from __future__ import annotations

from typing import Any

from fastapi import Security
from fastapi.security import APIKeyHeader

from dispatcher.api.schemas import DeploymentOut, ErrorBody
from dispatcher.core import signing
from dispatcher.model import Deployment

Responses = dict[int | str, dict[str, Any]]
REFUSALS: Responses = {
    400: {"model": ErrorBody, "description": "Unreadable body or Content-Length"},
    401: {"model": ErrorBody, "description": "Not signed, stale, bad signature or replayed"},
    413: {"model": ErrorBody, "description": "Body larger than the limit"},
    422: {"model": ErrorBody, "description": "Invalid request; the message names the problem"},
}
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such deployment"}}
CONFLICT: Responses = {
    409: {"model": ErrorBody, "description": "The deployment's state forbids it"}
}

# Documentation only: HookGuard has checked both headers before routing.
SIGNED = [
    Security(
        APIKeyHeader(
            name=signing.TIMESTAMP_HEADER,
            scheme_name="ForgeTimestamp",
            description="Unix seconds (a fraction allowed), within 300 s of the server",
            auto_error=False,
        )
    ),
    Security(
        APIKeyHeader(
            name=signing.SIGNATURE_HEADER,
            scheme_name="ForgeSignature",
            description=(
                "sha256=<hex HMAC-SHA256(FORGE_HOOK_SECRET, '<timestamp>.<raw body>')>; "
                "each signature is accepted once"
            ),
            auto_error=False,
        )
    ),
]


def public(dep: Deployment) -> DeploymentOut:
    return DeploymentOut.model_validate(dep.public())
