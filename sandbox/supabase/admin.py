"""The emulator's own control: `/_admin/supabase/rate-limit` on the apps server (admin token).

`GET` shows the budget, `PUT {"limit": n}` changes it (a test can reach 429 in a few calls),
`DELETE` starts fresh windows for every token (so a test that spent the budget does not leave
the next one throttled for up to a minute).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.admin import guarded
from sandbox.context import Context
from sandbox.supabase.ratelimit import RateLimiter


def admin_routes(ctx: Context, limiter: RateLimiter) -> list[Route]:
    async def rate_limit(request: Request) -> Response:
        if request.method == "PUT":
            try:
                limit = json.loads(await request.body())["limit"]
            except (ValueError, KeyError, TypeError):
                limit = None
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                return JSONResponse(
                    {"error": 'body must be {"limit": <integer >= 1>}'}, status_code=400
                )
            limiter.limit = limit
        elif request.method == "DELETE":
            limiter.reset()
        return JSONResponse({"limit": limiter.limit, "window_s": limiter.window_s})

    return [
        Route(
            "/_admin/supabase/rate-limit",
            guarded(ctx, rate_limit),
            methods=["GET", "PUT", "DELETE"],
        )
    ]
