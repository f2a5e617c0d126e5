"""The pages: `/ui/` (every deployment, in-flight ones on top) and `/ui/deployments/{id}`
(steps, timeline, live log, actions), served beside the API (`dispatcher.web.app`) over the
same front door, and importing nothing of the API.

Every route but the link (`/ui/login`) and the static files needs the session cookie
(`dispatcher.ui.links`): 401 without it. Write actions (POST) also need its CSRF token: 403.
The page's script follows `/ui/deployments/{id}/events`, the same stream as the hook's
`/v1/.../events` (`Deployments.follow`: stored, then live; `Last-Event-ID` or `after`
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

from dispatcher.core.deployments import Deployments
from dispatcher.core.errors import Refused, UnknownDeployment
from dispatcher.core.policy import Action, refusal
from dispatcher.model import Status
from dispatcher.ui import links, timeline, views
from dispatcher.web.params import MAX_ID, DeploymentIdPath
from dispatcher.web.settings import WebSettings
from dispatcher.web.sse import SEP, sse_chunk

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
STATUSES = tuple(s.value for s in Status)


def router(deployments: Deployments, settings: WebSettings) -> APIRouter:
    pages = Pages(deployments, settings)
    found = APIRouter(prefix="/ui", include_in_schema=False)
    found.add_api_route("/login", pages.login, methods=["GET"])
    found.add_api_route("/static/{name}", pages.static, methods=["GET"])
    found.add_api_route("/", pages.listing, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}", pages.deployment, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/summary", pages.summary, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/log.txt", pages.log, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/events", pages.events, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/{action}", pages.act, methods=["POST"])
    return found


class Pages:
    """One method per route; each reads or changes state through the front door only."""

    def __init__(self, deployments: Deployments, settings: WebSettings) -> None:
        self.deployments = deployments
        self.settings = settings
        self.secret = settings.hook_secret
        self.templates = Jinja2Templates(directory=HERE / "templates")

    # -- what every page shares ------------------------------------------------------------
    def page(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        response = self.templates.TemplateResponse(request, name, context, status_code=code)
        response.headers.update(HEADERS)
        return response

    def refused(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.page(request, "refused.html", status, message=message)

    def session(self, request: Request) -> str | HTMLResponse:
        """The session's id, or the page refusing a request without a valid one."""
        try:
            cookie = request.cookies.get(links.COOKIE)
            return links.session_id(self.secret, cookie, self.settings.clock())
        except links.LinkError as e:
            return self.refused(request, 401, e.message)

    # -- signing in, static files ----------------------------------------------------------
    async def login(
        self,
        request: Request,
        next_: Annotated[str, Query(alias="next", max_length=200)] = "",
        exp: Annotated[str, Query(max_length=20)] = "",
        sig: Annotated[str, Query(max_length=80)] = "",
    ) -> Response:
        try:
            link = links.check_link(self.secret, next_, exp, sig, self.settings.clock())
        except links.LinkError as e:
            return self.refused(request, 401, e.message)
        remember = self.deployments.remember_signature
        if not await run_in_threadpool(remember, link.signature, link.expires):
            return self.refused(request, 401, "this link was used already: ask for a new one")
        response = RedirectResponse(link.target, status_code=303)
        response.headers.update(HEADERS)
        response.set_cookie(
            links.COOKIE,
            links.new_session(self.secret, self.settings.clock()),
            max_age=int(links.SESSION_S),
            path="/ui/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    def static(self, name: str) -> Response:
        if name not in STATIC:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers=HEADERS)

    # -- reading ---------------------------------------------------------------------------
    def listing(
        self,
        request: Request,
        project: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        who = self.session(request)
        if isinstance(who, Response):
            return who
        project = project or None
        status = status if status in STATUSES else None
        flight, rest = views.rows(self.deployments.newest(project, limit=500), status)
        projects = sorted({d.project_id for d in self.deployments.newest(None, limit=500)})
        return self.page(
            request,
            "list.html",
            flight=flight,
            rest=rest,
            project=project or "",
            status=status or "",
            statuses=STATUSES,
            projects=projects,
            csrf=links.csrf_token(self.secret, who),
        )

    def deployment(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        return self.detail(request, deployment_id, "page.html")

    def summary(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        return self.detail(request, deployment_id, "summary.html")

    def detail(self, request: Request, deployment_id: str, name: str) -> Response:
        who = self.session(request)
        if isinstance(who, Response):
            return who
        try:
            dep = self.deployments.get(deployment_id)
        except UnknownDeployment:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        events = self.deployments.events(deployment_id)
        tl = timeline.build(events, dep, time.time())
        return self.page(
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
            csrf=links.csrf_token(self.secret, who),
        )

    def log(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        who = self.session(request)
        if isinstance(who, Response):
            return who
        try:
            self.deployments.get(deployment_id)
        except UnknownDeployment:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        text = views.log_text(self.deployments.events(deployment_id))
        disposition = f'attachment; filename="{deployment_id}.log"'
        return PlainTextResponse(text, headers={**HEADERS, "Content-Disposition": disposition})

    async def events(
        self,
        request: Request,
        deployment_id: DeploymentIdPath,
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0, le=MAX_ID)] = 0,
    ) -> Response:
        who = self.session(request)
        if isinstance(who, Response):
            return who
        try:
            await run_in_threadpool(self.deployments.get, deployment_id)
        except UnknownDeployment:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        start, tick_s = max(after, last_event_id), self.settings.sse_tick_s

        async def sse() -> AsyncIterator[bytes | ServerSentEvent]:
            async for batch in self.deployments.follow(deployment_id, start, tick_s):
                yield sse_chunk(batch)
            yield ServerSentEvent(data="{}", event="end", sep=SEP)  # the page stops reconnecting

        return EventSourceResponse(sse(), ping=self.settings.sse_ping_s, headers=HEADERS, sep=SEP)

    # -- acting ----------------------------------------------------------------------------
    async def act(
        self,
        request: Request,
        deployment_id: DeploymentIdPath,
        action: Action,
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> Response:
        who = self.session(request)
        if isinstance(who, Response):
            return who
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            links.check_csrf(self.secret, who, x_csrf_token or (form.get("csrf") or [""])[0])
        except links.LinkError as e:
            return self.refused(request, 403, e.message)
        try:
            done = await run_in_threadpool(getattr(self.deployments, action.value), deployment_id)
        except Refused as e:
            return self.refused(request, 409, e.message)
        except UnknownDeployment:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        response = RedirectResponse(f"/ui/deployments/{done.id}", status_code=303)
        response.headers.update(HEADERS)
        return response
