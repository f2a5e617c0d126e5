"""The emulator's own control of GitHub, on the apps server (admin token):

- `POST /_admin/github/tokens {"permissions": {"administration": "write", "contents": "write",
  "metadata": "read"}}`: a fine-grained access token holding only those repository permissions
  on the org (`today`); answers `{"token", "permissions"}` once.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.admin import guarded
from sandbox.context import Context
from sandbox.github import today


def admin_routes(ctx: Context, tokens: today.Tokens) -> list[BaseRoute]:
    async def make_token(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        wanted = today.check_permissions(
            body.get("permissions") if isinstance(body, dict) else None
        )
        if isinstance(wanted, str):
            return JSONResponse({"error": wanted}, status_code=400)
        return JSONResponse({"token": tokens.add(wanted), "permissions": wanted}, status_code=201)

    return [Route("/_admin/github/tokens", guarded(ctx, make_token), methods=["POST"])]
