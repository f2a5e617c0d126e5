"""The token's user and its one team (`version: northstar`, so the CLI links to the team)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError
from sandbox.vercel.state import VercelState


def routes(state: VercelState) -> list[Route]:
    async def user(request: Request) -> Response:
        return JSONResponse({"user": state.user_json()})

    async def teams(request: Request) -> Response:
        return JSONResponse(
            {"teams": [state.team_json()], "pagination": {"count": 1, "next": None, "prev": None}}
        )

    async def team(request: Request) -> Response:
        wanted = request.path_params["teamId"]
        ident = state.ctx.identity
        if wanted not in (ident.vercel_team_id, ident.vercel_team_slug):
            raise VercelError(404, "Team not found", "not_found")
        return JSONResponse(state.team_json())

    return [
        Route("/v2/user", endpoint(state, user, scoped=False), methods=["GET"]),
        Route("/www/user", endpoint(state, user, scoped=False), methods=["GET"]),
        Route("/v1/teams", endpoint(state, teams, scoped=False), methods=["GET"]),
        Route("/v2/teams", endpoint(state, teams, scoped=False), methods=["GET"]),
        Route("/teams/{teamId}", endpoint(state, team, scoped=False), methods=["GET"]),
        Route("/v1/teams/{teamId}", endpoint(state, team, scoped=False), methods=["GET"]),
        Route("/v2/teams/{teamId}", endpoint(state, team, scoped=False), methods=["GET"]),
    ]
