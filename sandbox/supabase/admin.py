"""The emulator's own control of Supabase, on the apps server (admin token):

- `/_admin/supabase/rate-limit`: `GET` shows the budget, `PUT {"limit": n, "window_s": s}`
  changes it (a test can reach 429 in a few calls, and see the window end within seconds;
  `window_s` is optional, default 60), `DELETE` starts fresh windows for every token (so a test
  that spent the budget does not leave the next one throttled for up to a minute);
- `/_admin/supabase/projects/{ref}/defaults`: `GET` / `PUT {"defaults": "2026" | "2025"}`, the
  one named setting that gives a project Supabase's 2025 behaviour (legacy keys enabled, new
  public tables granted to the API roles, the schema root open) or today's (`state`);
- `POST /_admin/supabase/projects/{ref}/pause`: the project goes INACTIVE, as a free project
  does after a week idle;
- `POST /_admin/supabase/projects/{ref}/realtime/drop {"seconds": s}`: every Realtime socket
  of the project is closed and new ones are refused (503) for `s` seconds, as in an outage;
  answers `{"closed": n}`;
- `POST /_admin/supabase/tokens {"permissions": [...]}`: a scoped access token holding only
  those fine-grained permissions (`guard`); answers `{"token", "permissions"}` once.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin import guarded
from sandbox.context import Context
from sandbox.supabase import guard
from sandbox.supabase.errors import ApiError
from sandbox.supabase.platform import ensure_platform
from sandbox.supabase.projects import pause_project
from sandbox.supabase.ratelimit import WINDOW_S, RateLimiter
from sandbox.supabase.realtime import Realtime
from sandbox.supabase.state import DEFAULTS, SupabaseState, defaults_2025


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


def admin_routes(
    ctx: Context, limiter: RateLimiter, state: SupabaseState, realtime: Realtime
) -> list[Route]:
    async def rate_limit(request: Request) -> Response:
        if request.method == "PUT":
            body = await _body(request)
            limit = body.get("limit") if isinstance(body, dict) else None
            window_s = body.get("window_s", WINDOW_S) if isinstance(body, dict) else None
            if (
                not isinstance(limit, int)
                or isinstance(limit, bool)
                or limit < 1
                or not isinstance(window_s, (int, float))
                or isinstance(window_s, bool)
                or not 0 < window_s <= 3600
            ):
                shape = '{"limit": <integer >= 1>, "window_s": <seconds, 0 < s <= 3600>}'
                return _bad(f"body must be {shape}")
            limiter.limit = limit
            limiter.window_s = float(window_s)
        elif request.method == "DELETE":
            limiter.reset()
        return JSONResponse({"limit": limiter.limit, "window_s": limiter.window_s})

    async def defaults(request: Request) -> Response:
        project = state.get(request.path_params["ref"])
        if project is None:
            return _bad("no such project", 404)
        if request.method == "PUT":
            body = await _body(request)
            wanted = body.get("defaults") if isinstance(body, dict) else None
            if wanted not in DEFAULTS:
                return _bad(f'body must be {{"defaults": one of {list(DEFAULTS)}}}')
            old = wanted == "2025"
            state.change_keys(project["ref"], lambda m: m.update(legacy_enabled=old))
            project = state.update(project["ref"], defaults=wanted)
            await run_in_threadpool(
                ensure_platform, ctx.postgres, project["db_role"], project["db_name"], old
            )
        return JSONResponse({"defaults": "2025" if defaults_2025(project) else "2026"})

    async def pause(request: Request) -> Response:
        project = state.get(request.path_params["ref"])
        if project is None:
            return _bad("no such project", 404)
        try:
            await pause_project(ctx, state, project)
        except ApiError as e:
            return _bad(e.message, 409)
        return JSONResponse({"status": "INACTIVE"})

    async def realtime_drop(request: Request) -> Response:
        ref = request.path_params["ref"]
        if state.get(ref) is None:
            return _bad(f"no project {ref}", 404)
        body = await _body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 3600:
            return _bad('body must be {"seconds": 0..3600}')
        return JSONResponse({"closed": await realtime.drop(ref, float(seconds))})

    async def tokens(request: Request) -> Response:
        body = await _body(request)
        wanted = body.get("permissions") if isinstance(body, dict) else None
        if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
            return _bad('body must be {"permissions": [<fine-grained permission>, ...]}')
        unknown = sorted(set(wanted) - guard.PERMISSIONS)
        if unknown:
            return _bad(f"unknown permission(s) {unknown}; known: {sorted(guard.PERMISSIONS)}")
        token = "sbp_" + secrets.token_hex(20)
        state.add_token(guard.digest(token), sorted(set(wanted)))
        return JSONResponse({"token": token, "permissions": sorted(set(wanted))}, status_code=201)

    base = "/_admin/supabase"
    return [
        Route(f"{base}/rate-limit", guarded(ctx, rate_limit), methods=["GET", "PUT", "DELETE"]),
        Route(f"{base}/projects/{{ref}}/defaults", guarded(ctx, defaults), methods=["GET", "PUT"]),
        Route(f"{base}/projects/{{ref}}/pause", guarded(ctx, pause), methods=["POST"]),
        Route(f"{base}/tokens", guarded(ctx, tokens), methods=["POST"]),
        Route(
            f"{base}/projects/{{ref}}/realtime/drop", guarded(ctx, realtime_drop), methods=["POST"]
        ),
    ]
