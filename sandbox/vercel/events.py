"""The build log: `GET /v3/deployments/{idOrUrl}/events` (and the CLI's `/v3/now/...` twin).

Without `follow` it answers what has happened so far (a JSON array, or NDJSON with
`format=lines`); with `follow=1` it streams NDJSON as the build goes and closes once the
deployment reaches a terminal state, so a consumer never waits on a stream without an end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.vercel import lifecycle
from sandbox.vercel.auth import endpoint
from sandbox.vercel.errors import VercelError, query_flag, query_int
from sandbox.vercel.state import VercelState

POLL_SECONDS = 0.1
STREAM = "application/stream+json"


def _window(events: list[dict[str, Any]], since: int | None, until: int | None) -> list[Any]:
    return [
        e
        for e in events
        if (since is None or e["created"] > since) and (until is None or e["created"] <= until)
    ]


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def routes(state: VercelState) -> list[Route]:
    def seen_so_far(deployment_id: str, now: int) -> tuple[list[Any], bool] | None:
        deployment = state.deployments.get(deployment_id)
        if deployment is None:
            return None
        events = [e for e in lifecycle.build_log(deployment) if e["created"] <= now]
        finished = lifecycle.ready_state(deployment, now) in lifecycle.TERMINAL
        return events, finished

    async def follow(
        deployment_id: str, since: int | None, until: int | None
    ) -> AsyncIterator[bytes]:
        sent: set[str] = set()
        while True:
            snapshot = seen_so_far(deployment_id, state.now_ms())
            if snapshot is None:
                return
            events, finished = snapshot
            for event in _window(events, since, until):
                if event["id"] not in sent:
                    sent.add(event["id"])
                    yield _line(event)
            if finished:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def events(request: Request) -> Response:
        deployment = state.deployment(request.path_params["idOrUrl"])
        since = query_int(request, "since")
        until = query_int(request, "until")
        direction = request.query_params.get("direction", "forward")
        if direction not in ("forward", "backward"):
            raise VercelError(400, "Invalid query: `direction` should be forward or backward")
        if query_flag(request, "follow"):
            return StreamingResponse(follow(deployment["id"], since, until), media_type=STREAM)
        snapshot = seen_so_far(deployment["id"], state.now_ms())
        found = _window(snapshot[0] if snapshot else [], since, until)
        if direction == "backward":
            found.reverse()
        limit = query_int(request, "limit")
        if limit is not None and limit > 0:
            found = found[:limit]
        if request.query_params.get("format") == "lines":
            return Response(b"".join(_line(e) for e in found), media_type=STREAM)
        return JSONResponse(found)

    handler = endpoint(state, events)
    return [
        Route("/v3/deployments/{idOrUrl:path}/events", handler, methods=["GET"]),
        Route("/v3/now/deployments/{idOrUrl:path}/events", handler, methods=["GET"]),
        Route("/v2/deployments/{idOrUrl:path}/events", handler, methods=["GET"]),
    ]
