"""The outer guard of every Management API call: who the bearer token is, its request budget,
and whether its scope allows the operation.

The sandbox's own token (`sbp_...` in the announcement) holds every permission, as a classic
personal access token does. The admin API issues **scoped tokens** too (`POST
/_admin/supabase/tokens {"permissions": [...]}`), holding only the fine-grained permissions
named: the `x-fga-permissions` of each operation in supabase-management.json (e.g.
`database_migrations_write`), a different vocabulary from the OAuth scopes. A call outside a
token's scope answers 403 with the permissions it lacks (scoped tokens are GA since
2026-09-28; the body's `message` is the sandbox's wording, `missing_permissions` the list the
changelog describes). Operations the excerpt does not describe (the pooler and storage config,
the profile) need no fine-grained permission.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.supabase.errors import error_response
from sandbox.supabase.ratelimit import RateLimiter
from sandbox.supabase.state import SupabaseState

# (method, path template, alternatives: each a set of permissions that together allow the call)
# — the `x-fga-permissions` of supabase-management.json for every operation the sandbox serves
# (tests/sandbox/test_supabase_today.py checks them against the document).
OPERATIONS: tuple[tuple[str, str, tuple[tuple[str, ...], ...]], ...] = (
    ("GET", "/v1/organizations", (("organizations_read",),)),
    ("GET", "/v1/organizations/{slug}", (("organization_admin_read",),)),
    ("GET", "/v1/organizations/{slug}/projects", (("organization_projects_read",),)),
    ("GET", "/v1/projects", (("projects_read",),)),
    ("POST", "/v1/projects", (("organization_projects_create",),)),
    ("GET", "/v1/projects/{ref}", (("project_admin_read",),)),
    ("DELETE", "/v1/projects/{ref}", (("project_admin_write",),)),
    ("PATCH", "/v1/projects/{ref}", (("project_admin_write",),)),
    ("GET", "/v1/projects/{ref}/health", (("project_admin_read",),)),
    ("GET", "/v1/projects/{ref}/api-keys", (("api_gateway_keys_read",),)),
    ("POST", "/v1/projects/{ref}/api-keys", (("api_gateway_keys_write",),)),
    ("GET", "/v1/projects/{ref}/api-keys/legacy", (("api_gateway_keys_read",),)),
    ("PUT", "/v1/projects/{ref}/api-keys/legacy", (("api_gateway_keys_write",),)),
    ("PATCH", "/v1/projects/{ref}/api-keys/{id}", (("api_gateway_keys_write",),)),
    ("GET", "/v1/projects/{ref}/api-keys/{id}", (("api_gateway_keys_read",),)),
    ("DELETE", "/v1/projects/{ref}/api-keys/{id}", (("api_gateway_keys_write",),)),
    ("GET", "/v1/projects/{ref}/config/auth", (("auth_config_read",),)),
    ("PATCH", "/v1/projects/{ref}/config/auth", (("auth_config_write", "project_admin_write"),)),
    ("GET", "/v1/projects/{ref}/config/auth/signing-keys", (("auth_signing_keys_read",),)),
    ("GET", "/v1/projects/{ref}/database/migrations", (("database_migrations_read",),)),
    ("POST", "/v1/projects/{ref}/database/migrations", (("database_migrations_write",),)),
    ("PUT", "/v1/projects/{ref}/database/migrations", (("database_migrations_write",),)),
    ("GET", "/v1/projects/{ref}/database/migrations/{version}", (("database_migrations_read",),)),
    ("POST", "/v1/projects/{ref}/database/query", (("database_write",), ("database_read",))),
    ("POST", "/v1/projects/{ref}/database/query/read-only", (("database_read",),)),
    ("POST", "/v1/projects/{ref}/pause", (("project_admin_write",),)),
    ("GET", "/v1/projects/{ref}/restore", (("project_admin_read",),)),
    ("POST", "/v1/projects/{ref}/restore", (("project_admin_write",),)),
)
PERMISSIONS = frozenset(p for _, _, alternatives in OPERATIONS for a in alternatives for p in a)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "/?$"
    )


# Literal paths first: `/api-keys/legacy` is not the key whose id is "legacy".
_MATCHERS = sorted(
    ((method, _pattern(template), alternatives) for method, template, alternatives in OPERATIONS),
    key=lambda m: m[1].pattern.count("[^/]+"),
)


def required(method: str, path: str) -> tuple[tuple[str, ...], ...] | None:
    """The alternatives allowing `method path`, or None when it needs no permission."""
    for wanted, pattern, alternatives in _MATCHERS:
        if wanted == method and pattern.match(path):
            return alternatives
    return None


def missing(held: frozenset[str], alternatives: tuple[tuple[str, ...], ...]) -> list[str]:
    """What `held` lacks for the alternative it comes closest to (empty: allowed)."""
    gaps = [[p for p in alternative if p not in held] for alternative in alternatives]
    return min(gaps, key=len) if gaps else []


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class GuardMiddleware:
    """Every Management API call: `Authorization: Bearer <token>` of a known token (else 401),
    one unit of the token's budget (else 429; the budget headers go on every answer to a known
    token), then the token's scope (else 403 with `missing_permissions`)."""

    def __init__(
        self, app: ASGIApp, token: str, limiter: RateLimiter, state: SupabaseState
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.limiter = limiter
        self.state = state

    def _scope(self, given: bytes) -> frozenset[str] | bool | None:
        """All permissions (None), a scoped token's, or False for an unknown token."""
        if hmac.compare_digest(given, self.expected):
            return None
        scheme, _, token = given.decode(errors="replace").partition(" ")
        if scheme != "Bearer" or not token:
            return False
        permissions = self.state.token_permissions(digest(token))
        return False if permissions is None else frozenset(permissions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        held = self._scope(given)
        if held is False:
            await error_response(401, "Unauthorized")(scope, receive, send)
            return
        decision = self.limiter.hit(given.decode(errors="replace"))
        extra = [(k.encode(), v.encode()) for k, v in decision.headers().items()]
        if not decision.allowed:
            response = error_response(429, "Too many requests. Rate limit exceeded.")
            response.headers.update(decision.headers())
            await response(scope, receive, send)
            return
        if isinstance(held, frozenset):
            alternatives = required(scope["method"], scope["path"])
            lacking = missing(held, alternatives) if alternatives else []
            if lacking:
                await _forbidden(lacking, decision.headers())(scope, receive, send)
                return

        async def send_with_budget(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_budget)


def _forbidden(lacking: list[str], headers: dict[str, str]) -> JSONResponse:
    message = "Your access token does not have the permissions this endpoint needs: "
    return JSONResponse(
        {"message": message + ", ".join(lacking), "missing_permissions": lacking},
        status_code=403,
        headers=headers,
    )
