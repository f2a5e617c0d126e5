"""/v1/deployments/{id}/events: the stored events then the live ones, as Server-Sent Events
(`Last-Event-ID` resumes) or JSON lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from dispatcher.api.routes.common import NOT_FOUND, REFUSALS, SIGNED
from dispatcher.core.deployments import Deployments
from dispatcher.web.params import MAX_ID, DeploymentIdPath
from dispatcher.web.settings import WebSettings
from dispatcher.web.sse import SEP, sse_chunk

NDJSON = "application/x-ndjson"


def add_routes(app: FastAPI, deployments: Deployments, settings: WebSettings) -> None:
    @app.get(
        "/v1/deployments/{deployment_id}/events",
        dependencies=SIGNED,
        response_class=Response,
        responses={
            200: {
                "description": (
                    "Server-Sent Events (id = event id, event = type, data = the event as "
                    "JSON), following until the deployment is over; or JSON lines"
                ),
                "content": {"text/event-stream": {}, NDJSON: {}},
            },
            **NOT_FOUND,
            **REFUSALS,
        },
        summary="The deployment's events",
    )
    async def deployment_events(
        request: Request,
        deployment_id: DeploymentIdPath,
        format: Annotated[
            Literal["auto", "sse", "jsonl"],
            Query(description=f"auto: JSON lines when Accept names {NDJSON}, else SSE"),
        ] = "auto",
        follow_: Annotated[
            bool, Query(alias="follow", description="JSON lines: keep following, like SSE")
        ] = False,
        after: Annotated[
            int, Query(ge=0, le=MAX_ID, description="Only events with a larger id")
        ] = 0,
        last_event_id: Annotated[
            int,
            Header(alias="Last-Event-ID", ge=0, le=MAX_ID, description="SSE resume point"),
        ] = 0,
    ) -> Response:
        await run_in_threadpool(deployments.get, deployment_id)  # 404 before any stream
        start = max(after, last_event_id)
        accept = request.headers.get("accept", "")
        if format == "jsonl" or (format == "auto" and NDJSON in accept):

            async def lines() -> AsyncIterator[str]:
                if follow_:
                    async for batch in deployments.follow(
                        deployment_id, start, settings.sse_tick_s
                    ):
                        yield "".join(event.json + "\n" for event in batch)
                else:
                    async for event in deployments.backlog(deployment_id, start):
                        yield event.json + "\n"

            return StreamingResponse(lines(), media_type=NDJSON)

        async def sse() -> AsyncIterator[bytes]:
            async for batch in deployments.follow(deployment_id, start, settings.sse_tick_s):
                yield sse_chunk(batch)

        return EventSourceResponse(sse(), ping=settings.sse_ping_s, sep=SEP)
