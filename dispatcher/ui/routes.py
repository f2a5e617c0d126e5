"""The pages: `/ui/` (every deployment, in-flight ones on top) and `/ui/deployments/{id}`
(steps, timeline, live log, actions), served from the dispatcher's own app.

Every route but the link (`/ui/login`) and the static files needs the session cookie
(`dispatcher.ui.links`): 401 without it. Write actions (POST) also need its CSRF token: 403.
The page's script follows `/ui/deployments/{id}/events`, the same stream as the hook's
`/v1/.../events` (`dispatcher.core.hub.follow`: stored, then live; `Last-Event-ID` or `after`
resumes), under the session instead of a per-request signature, which `EventSource` cannot
send. Nothing shown is a secret: the rows and events are masked before they are stored.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dispatcher.api.routes.common import ApiSettings, Control, DeploymentId
from dispatcher.api.routes.events import SEP, sse_chunk
from dispatcher.core.hub import follow_batches
from dispatcher.core.policy import Action, Refused, refusal
from dispatcher.model import StoredEvent
from dispatcher.store.base import Store
from dispatcher.ui import links, timeline, views

HERE = Path(__file__).parent
STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_ID = 2**63 - 1
STATUSES = ("queued", "running", "live", "unhealthy", "failed", "cancelled")


def router(store: Store, control: Control, settings: ApiSettings) -> APIRouter:
    pages = APIRouter(prefix="/ui", include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    secret = settings.hook_secret

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        response = templates.TemplateResponse(request, name, context, status_code=code)
        response.headers.update(HEADERS)
        return response

    def refused(request: Request, status: int, message: str) -> HTMLResponse:
        return page(request, "refused.html", status, message=message)

    def session(request: Request) -> str | HTMLResponse:
        try:
            return links.session_id(secret, request.cookies.get(links.COOKIE), settings.clock())
        except links.LinkError as e:
            return refused(request, 401, e.message)

    @pages.get("/login")
    async def login(
        request: Request,
        next_: Annotated[str, Query(alias="next", max_length=200)] = "",
        exp: Annotated[str, Query(max_length=20)] = "",
        sig: Annotated[str, Query(max_length=80)] = "",
    ) -> Response:
        try:
            link = links.check_link(secret, next_, exp, sig, settings.clock())
        except links.LinkError as e:
            return refused(request, 401, e.message)
        if not await run_in_threadpool(store.remember_signature, link.signature, link.expires):
            return refused(request, 401, "this link was used already: ask for a new one")
        response = RedirectResponse(link.target, status_code=303)
        response.headers.update(HEADERS)
        response.set_cookie(
            links.COOKIE,
            links.new_session(secret, settings.clock()),
            max_age=int(links.SESSION_S),
            path="/ui/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @pages.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers=HEADERS)

    @pages.get("/")
    def deployments(
        request: Request,
        project: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        who = session(request)
        if isinstance(who, Response):
            return who
        project = project or None
        status = status if status in STATUSES else None
        deps = store.list_deployments(project, limit=500)
        flight, rest = views.rows(deps, status)
        projects = sorted({d.project_id for d in store.list_deployments(None, limit=500)})
        return page(
            request,
            "list.html",
            flight=flight,
            rest=rest,
            project=project or "",
            status=status or "",
            statuses=STATUSES,
            projects=projects,
            csrf=links.csrf_token(secret, who),
        )

    def detail(request: Request, deployment_id: str, name: str, sid: str) -> Response:
        dep = store.get(deployment_id)
        if dep is None:
            return refused(request, 404, f"no deployment {deployment_id}")
        events = store.events(deployment_id)
        tl = timeline.build(events, dep, time.time())
        return page(
            request,
            name,
            dep=dep,
            tl=tl,
            lanes=timeline.LANES,
            svg=timeline.svg(tl),
            failure=views.failure(dep, tl),
            icon=views.STATUS_ICONS[dep.status.value],
            refusals={a.value: refusal(a, dep) for a in Action},
            last_id=max((e.id for e in events), default=0),
            csrf=links.csrf_token(secret, sid),
        )

    @pages.get("/deployments/{deployment_id}")
    def deployment(request: Request, deployment_id: DeploymentId) -> Response:
        who = session(request)
        return (
            who if isinstance(who, Response) else detail(request, deployment_id, "page.html", who)
        )

    @pages.get("/deployments/{deployment_id}/summary")
    def summary(request: Request, deployment_id: DeploymentId) -> Response:
        who = session(request)
        return (
            who
            if isinstance(who, Response)
            else detail(request, deployment_id, "summary.html", who)
        )

    @pages.get("/deployments/{deployment_id}/log.txt")
    def log(request: Request, deployment_id: DeploymentId) -> Response:
        who = session(request)
        if isinstance(who, Response):
            return who
        if store.get(deployment_id) is None:
            return refused(request, 404, f"no deployment {deployment_id}")
        text = views.log_text(store.events(deployment_id))
        disposition = f'attachment; filename="{deployment_id}.log"'
        return PlainTextResponse(text, headers={**HEADERS, "Content-Disposition": disposition})

    @pages.get("/deployments/{deployment_id}/events")
    async def events(
        request: Request,
        deployment_id: DeploymentId,
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0, le=MAX_ID)] = 0,
    ) -> Response:
        who = session(request)
        if isinstance(who, Response):
            return who
        if await run_in_threadpool(store.get, deployment_id) is None:
            return refused(request, 404, f"no deployment {deployment_id}")
        followed: AsyncIterator[list[StoredEvent]] = follow_batches(
            store,
            lambda: control.subscribe(deployment_id),
            deployment_id,
            max(after, last_event_id),
            tick_s=settings.sse_tick_s,
        )

        async def sse() -> AsyncIterator[bytes | ServerSentEvent]:
            async for batch in followed:
                yield sse_chunk(batch)
            yield ServerSentEvent(data="{}", event="end", sep=SEP)  # the page stops reconnecting

        return EventSourceResponse(sse(), ping=settings.sse_ping_s, headers=HEADERS, sep=SEP)

    @pages.post("/deployments/{deployment_id}/{action}")
    async def act(
        request: Request,
        deployment_id: DeploymentId,
        action: Action,
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> Response:
        who = session(request)
        if isinstance(who, Response):
            return who
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            links.check_csrf(secret, who, x_csrf_token or (form.get("csrf") or [""])[0])
        except links.LinkError as e:
            return refused(request, 403, e.message)
        if await run_in_threadpool(store.get, deployment_id) is None:
            return refused(request, 404, f"no deployment {deployment_id}")
        try:
            done = await run_in_threadpool(getattr(control, action.value), deployment_id)
        except Refused as e:
            return refused(request, 409, e.message)
        except LookupError:
            return refused(request, 404, f"no deployment {deployment_id}")
        response = RedirectResponse(f"/ui/deployments/{done.id}", status_code=303)
        response.headers.update(HEADERS)
        return response

    return pages
