"""/v1/deployments/{id}/events: the stored events then the live ones, as Server-Sent Events
(`Last-Event-ID` resumes) or JSON lines."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dispatcher.api.routes.common import (
    NOT_FOUND,
    REFUSALS,
    SIGNED,
    ApiSettings,
    Control,
    DeploymentId,
    existing,
)
from dispatcher.core.hub import event_json, follow_batches, stored_events
from dispatcher.model import StoredEvent
from dispatcher.store.base import Store

NDJSON = "application/x-ndjson"
MAX_ID = 2**63 - 1  # what an SQLite / PostgreSQL bigint holds


SEP = "\n"  # not CRLF: a client splitting lines per chunk would break a CR|LF across two


def sse_chunk(batch: list[StoredEvent]) -> bytes:
    """A batch of events as one write: their SSE frames (id = event id, event = type, data =
    the event's JSON, made once per event for every watcher)."""
    return b"".join(
        ServerSentEvent(data=event_json(e), id=str(e.id), event=e.type, sep=SEP).encode()
        for e in batch
    )


def add_routes(app: FastAPI, store: Store, control: Control, settings: ApiSettings) -> None:

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
        deployment_id: DeploymentId,
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
        await run_in_threadpool(existing, store, deployment_id)
        start = max(after, last_event_id)
        accept = request.headers.get("accept", "")
        jsonl = format == "jsonl" or (format == "auto" and NDJSON in accept)

        def followed() -> AsyncIterator[list[StoredEvent]]:
            return follow_batches(
                store,
                lambda: control.subscribe(deployment_id),
                deployment_id,
                start,
                tick_s=settings.sse_tick_s,
            )

        if jsonl:

            async def lines() -> AsyncIterator[str]:
                if follow_:
                    async for batch in followed():
                        yield "".join(event_json(event) + "\n" for event in batch)
                else:
                    async for event in stored_events(store, deployment_id, start):
                        yield event_json(event) + "\n"

            return StreamingResponse(lines(), media_type=NDJSON)

        async def sse() -> AsyncIterator[bytes]:
            async for batch in followed():
                yield sse_chunk(batch)

        return EventSourceResponse(sse(), ping=settings.sse_ping_s, sep=SEP)
