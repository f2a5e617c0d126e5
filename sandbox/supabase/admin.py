"""The emulator's own control: `/_admin/supabase/rate-limit` on the apps server (admin token).

`GET` shows the budget, `PUT {"limit": n, "window_s": s}` changes it (a test can reach 429 in a
few calls, and see the window end within seconds; `window_s` is optional, default 60),
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
from sandbox.supabase.ratelimit import WINDOW_S, RateLimiter


def admin_routes(ctx: Context, limiter: RateLimiter) -> list[Route]:
    async def rate_limit(request: Request) -> Response:
        if request.method == "PUT":
            try:
                body = json.loads(await request.body())
                limit, window_s = body["limit"], body.get("window_s", WINDOW_S)
            except (ValueError, KeyError, TypeError, AttributeError):
                limit = window_s = None
            if (
                not isinstance(limit, int)
                or isinstance(limit, bool)
                or limit < 1
                or not isinstance(window_s, (int, float))
                or isinstance(window_s, bool)
                or not 0 < window_s <= 3600
            ):
                shape = '{"limit": <integer >= 1>, "window_s": <seconds, 0 < s <= 3600>}'
                return JSONResponse({"error": f"body must be {shape}"}, status_code=400)
            limiter.limit = limit
            limiter.window_s = float(window_s)
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
