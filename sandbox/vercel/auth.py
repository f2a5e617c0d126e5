"""Every API endpoint goes through `endpoint()`: bearer token, team scope, error mapping."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from sandbox.vercel.errors import VercelError, error_response
from sandbox.vercel.ratelimit import DEFAULT_BUDGET, Decision
from sandbox.vercel.state import VercelState

Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger("forge-sandbox.vercel")


def check_token(state: VercelState, request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise VercelError(
            401,
            "The request is missing an authentication token",
            "forbidden",
            missingToken=True,
        )
    if not hmac.compare_digest(token.encode(), state.ctx.identity.vercel_token.encode()):
        raise VercelError(403, "Not authorized", "forbidden", invalidToken=True)


def check_scope(state: VercelState, request: Request) -> None:
    """`teamId`/`slug` must name the sandbox team; absent means the personal scope, which
    resolves to the same (default) team."""
    ident = state.ctx.identity
    team_id = request.query_params.get("teamId")
    slug = request.query_params.get("slug")
    if team_id and team_id != ident.vercel_team_id:
        raise VercelError(403, f"You don't have access to the team {team_id!r}", "forbidden")
    if slug and slug != ident.vercel_team_slug:
        raise VercelError(403, f"You don't have access to the team {slug!r}", "forbidden")


def check_budget(state: VercelState, bucket: str, budget: int) -> Decision:
    decision = state.limiter.hit(bucket, budget)
    if not decision.allowed:
        raise VercelError(
            429,
            "Rate limit exceeded: too many requests to this endpoint",
            "rate_limited",
            limit=decision.limit(),
        )
    return decision


def endpoint(
    state: VercelState, handler: Handler, *, scoped: bool = True, budget: int = DEFAULT_BUDGET
) -> Handler:
    """`handler` behind the token, the team scope and a per-minute `budget` of calls."""
    bucket = f"{handler.__module__}.{handler.__qualname__}"

    async def wrapper(request: Request) -> Response:
        try:
            check_token(state, request)
            if scoped:
                check_scope(state, request)
            decision = check_budget(state, bucket, budget)
            response = await handler(request)
            response.headers.update(decision.headers())
            return response
        except VercelError as e:
            return error_response(e)
        except Exception:  # a bug must still answer in the provider's shape
            log.exception("vercel: %s %s failed", request.method, request.url.path)
            return error_response(
                VercelError(500, "An unexpected internal error occurred", "internal_server_error")
            )

    return wrapper
