"""Who a tenant request is, as PostgREST and GoTrue decide it: the bearer token (or, without
one, the `apikey`) verified with the project's JWT secret (HS256), its `role` claim the database
role and the claims `request.jwt.claims`.

The new opaque keys stand for a role, as the platform's gateway maps them: a publishable key is
`anon`, a secret key `service_role`. Only the three API roles may be claimed (the sandbox's
cluster is shared by every project, so a token naming another role is refused).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.supabase.platform import API_ROLES


class JwtRefused(Exception):
    """PostgREST's PGRST301: the token is not valid for this project."""


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, Any]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def caller(request: Request, keys: dict[str, Any]) -> Caller:
    token = bearer(request) or request.headers.get("apikey") or ""
    if token == keys["publishable"]["key"]:
        return Caller("anon", {"role": "anon"})
    if token == keys["secret"]["key"]:
        return Caller("service_role", {"role": "service_role"})
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            keys["jwt_secret"],
            algorithms=["HS256"],
            options={"verify_aud": False, "require": ["role"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise JwtRefused("JWT expired") from e
    except jwt.InvalidSignatureError as e:
        raise JwtRefused("JWSError JWSInvalidSignature") from e
    except jwt.PyJWTError as e:
        raise JwtRefused(f"JWSError {type(e).__name__}: {e}") from e
    role = claims.get("role")
    if role not in API_ROLES:
        raise JwtRefused(f"the role claim must be one of {', '.join(API_ROLES)} (sandbox)")
    return Caller(str(role), claims)


def user_response(request: Request, keys: dict[str, Any]) -> Response:
    """GoTrue's `GET /auth/v1/user`: the signed-in user of a valid user JWT. The sandbox keeps
    no user table: the user is what the token's claims say (`sub`, `email`, `role`)."""
    token = bearer(request)
    if token is None:
        return JSONResponse(
            {
                "code": 401,
                "error_code": "no_authorization",
                "msg": "This endpoint requires a valid Bearer token",
            },
            status_code=401,
        )
    try:
        who = caller(request, keys)
    except JwtRefused as e:
        return _bad_jwt(f"invalid JWT: unable to parse or verify signature, {e}")
    sub = who.claims.get("sub")
    if not sub:
        return _bad_jwt("invalid claim: missing sub claim")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(who.claims.get("iat", 0))))
    return JSONResponse(
        {
            "id": sub,
            "aud": who.claims.get("aud", "authenticated"),
            "role": who.role,
            "email": who.claims.get("email", ""),
            "phone": "",
            "app_metadata": who.claims.get("app_metadata", {"provider": "email"}),
            "user_metadata": who.claims.get("user_metadata", {}),
            "identities": [],
            "created_at": created,
            "updated_at": created,
            "is_anonymous": bool(who.claims.get("is_anonymous", False)),
        }
    )


def _bad_jwt(message: str) -> Response:
    return JSONResponse({"code": 403, "error_code": "bad_jwt", "msg": message}, status_code=403)
