"""The emulator's own control of Vercel, on the apps server (admin token):

- `/_admin/vercel/projects/{idOrName}/defaults`: `GET` / `PUT {"defaults": "2026" | "2025"}`,
  the one named setting that gives a project Vercel's 2025 behaviour (builds on Node 18.x-22.x)
  or today's (`today`: builds on 22.x and 24.x only). The project's stored `nodeVersion` and
  `ssoProtection` stay as they are: they are the owner's settings, changed through the API.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin import guarded
from sandbox.vercel import today
from sandbox.vercel.state import VercelState


def admin_routes(state: VercelState) -> list[Route]:
    async def defaults(request: Request) -> Response:
        project = state.find_project(request.path_params["idOrName"])
        if project is None:
            return JSONResponse({"error": "no such project"}, status_code=404)
        if request.method == "PUT":
            try:
                body = json.loads(await request.body())
            except ValueError:
                body = None
            wanted = body.get("defaults") if isinstance(body, dict) else None
            if wanted not in today.DEFAULTS:
                return JSONResponse(
                    {"error": f'body must be {{"defaults": one of {list(today.DEFAULTS)}}}'},
                    status_code=400,
                )
            with state.store.change():
                state.project(project["id"])["defaults"] = wanted
            project = state.project(project["id"])
        return JSONResponse({"defaults": today.of(project)})

    path = "/_admin/vercel/projects/{idOrName}/defaults"
    return [Route(path, guarded(state.ctx, defaults), methods=["GET", "PUT"])]
