"""Who a tenant request is, decided in two steps as the platform does.

1. The gateway reads the `apikey` (header or query): one of the project's publishable or secret
   keys, or a legacy `anon` / `service_role` JWT. A legacy key is refused once the pair is
   disabled (401, "Legacy API keys are disabled"; the pair stays listed by the Management API);
   a secret key is refused from a browser (its User-Agent; 401). Unknown keys are 401.
2. PostgREST and GoTrue read `Authorization: Bearer`: either the same key as `apikey` (or none),
   which stands for the key's role, or a user's JWT, verified with the project's signing keys
   (`signing`); its `role` claim is the database role and its claims `request.jwt.claims`.
   Disabling the legacy pair does not revoke a legacy JWT as a bearer (it is verified like any
   token the HS256 secret signed).

Facts: ../shared/specs/README.md, last section. Not confirmed there, the sandbox's choices: the
hint texts, and that a browser is a User-Agent starting with `Mozilla/`.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from sandbox.supabase.keys import LEGACY, find_opaque
from sandbox.supabase.signing import JwtRefused, verify

__all__ = ["ApiKey", "Caller", "GatewayRefused", "JwtRefused", "api_key", "caller"]

_ROLE = {"publishable": "anon", "secret": "service_role", "anon": "anon"}


class GatewayRefused(Exception):
    """The gateway's refusal: `{"message", "hint"?}` with a status."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint

    def response(self) -> Response:
        body = {"message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return JSONResponse(body, status_code=self.status)


@dataclass(frozen=True)
class ApiKey:
    kind: str  # publishable | secret | anon | service_role (the last two: the legacy JWTs)
    value: str

    @property
    def role(self) -> str:
        return _ROLE.get(self.kind, "service_role")

    @property
    def privileged(self) -> bool:
        """A secret key or the legacy service-role key: bypasses RLS, may read the schema."""
        return self.role == "service_role"


@dataclass(frozen=True)
class Caller:
    role: str
    claims: dict[str, Any]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _browser(request: HTTPConnection) -> bool:
    return request.headers.get("user-agent", "").startswith("Mozilla/")


def api_key(request: HTTPConnection, project: dict[str, Any]) -> ApiKey:
    """The gateway's check of the `apikey`; `GatewayRefused` for anything it does not let in."""
    given = request.headers.get("apikey") or request.query_params.get("apikey")
    if not given:
        raise GatewayRefused(
            401, "No API key found in request", "No `apikey` request header or url param was found."
        )
    material = project["keys"]
    found = find_opaque(material, given)
    if found is not None:
        if found["type"] == "secret" and _browser(request):
            raise GatewayRefused(
                401,
                "Forbidden use of secret API key in browser",
                "Secret API keys can only be used in a protected environment, never in a browser."
                " Use the publishable key there.",
            )
        return ApiKey(found["type"], given)
    for role in LEGACY:
        if hmac.compare_digest(given.encode(), material[role].encode()):
            if not material["legacy_enabled"]:
                raise GatewayRefused(
                    401,
                    "Legacy API keys are disabled",
                    "Your legacy API keys (anon, service_role) were disabled. Use the publishable"
                    " or a secret API key instead, or re-enable the legacy keys.",
                )
            return ApiKey(role, given)
    raise GatewayRefused(
        401, "Invalid API key", "Double check your Supabase API key (publishable or secret)."
    )


def caller(request: Request, project: dict[str, Any], key: ApiKey) -> Caller:
    """The database role and claims of a request the gateway let in; `JwtRefused` for a bearer
    that is neither the request's key nor a token the project signed."""
    token = bearer(request)
    if token is None or hmac.compare_digest(token.encode(), key.value.encode()):
        if key.kind in LEGACY:
            return Caller(key.role, verify(key.value, project["keys"]))
        return Caller(key.role, {"role": key.role, "iss": "supabase", "ref": project["ref"]})
    if token.startswith("sb_"):
        raise JwtRefused("the Authorization header holds an API key other than the apikey")
    claims = verify(token, project["keys"])
    return Caller(str(claims["role"]), claims)


def user_response(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
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
        who = caller(request, project, key)
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
