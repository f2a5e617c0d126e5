"""The pages: `/ui/` (the deployments a session may see, in-flight ones on top, kept current)
and `/ui/deployments/{id}` (steps, timeline, live log, actions), served beside the API
(`dispatcher.web.app`) over the same front door, and importing nothing of the API.

Every route but signing in (`dispatcher.ui.signin`), the static files and the favicon needs the
session cookie (`dispatcher.ui.links`): 401 without it. Each checks the session's scope: a
deployment outside it answers 403 (and so does an unknown one, unless the session sees
everything: a scoped session cannot tell the two apart), the list shows only what is within.
Write actions (POST) also need the session's CSRF token: 403. The page's script follows
`/ui/deployments/{id}/events`: the deployment's log lines as the page draws them
(`views.LogLine.wire`), a batch per message, its id the batch's last event id
(`Deployments.follow`: stored, then live; `Last-Event-ID` or `after` resumes), under the
session instead of a per-request signature, which `EventSource` cannot send. Nothing shown is
a secret: the rows and events are masked before they are stored.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from dispatcher.core.deployments import Deployments
from dispatcher.core.errors import Refused, UnknownDeployment
from dispatcher.core.policy import Action, refusal
from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.ui import ansi, links, signin, timeline, timeline_svg, views
from dispatcher.ui.scopes import Scope
from dispatcher.web.params import MAX_ID, DeploymentIdPath
from dispatcher.web.settings import WebSettings
from dispatcher.web.sse import SEP

HERE = Path(__file__).parent
STATIC = {
    "ui.js": "text/javascript",
    "page.js": "text/javascript",
    "ui.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
ANSI_CSS = ansi.css()
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
LISTED = 500  # the newest deployments the list looks at
PAGE = 10_000  # events read per store call


def _breaks(escaped: str) -> str:
    for sep in "_.:-/":
        escaped = escaped.replace(sep, sep + "<wbr>")
    return escaped


def wrappable(text: object) -> Markup:
    """An id or name, escaped, that may wrap after its separators (`_ . : - /`), never inside
    a word."""
    return Markup(_breaks(str(escape(str(text)))))  # noqa: S704 - escaped; only <wbr> added


def coloured(shown: ansi.Shown, wrap: bool = False) -> Markup:
    """Terminal text as HTML: a span per run of one style (`ansi.css` names the classes);
    with `wrap`, breakable after separators as `wrappable` is."""
    spans = []
    for text, classes in shown.segments:
        escaped = _breaks(str(escape(text))) if wrap else str(escape(text))
        spans.append(f'<span class="{classes}">{escaped}</span>' if classes else escaped)
    return Markup("".join(spans))  # noqa: S704 - each text escaped; classes are ansi's own


def router(deployments: Deployments, settings: WebSettings) -> APIRouter:
    pages = Pages(deployments, settings)
    found = APIRouter(prefix="/ui", include_in_schema=False)
    signin.add_routes(found, pages)
    found.add_api_route("/static/ansi.css", pages.ansi_css, methods=["GET"])
    found.add_api_route("/static/{name}", pages.static, methods=["GET"])
    found.add_api_route("/", pages.listing, methods=["GET"])
    found.add_api_route("/rows", pages.rows, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}", pages.deployment, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/summary", pages.summary, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/log.txt", pages.log, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/events", pages.events, methods=["GET"])
    found.add_api_route("/deployments/{deployment_id}/{action}", pages.act, methods=["POST"])
    return found


def favicon() -> Response:
    """`/favicon.ico`, which browsers ask for on their own: the pages' icon, open to all."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type=STATIC["favicon.svg"])


class Pages:
    """One method per route; each reads or changes state through the front door only."""

    def __init__(self, deployments: Deployments, settings: WebSettings) -> None:
        self.deployments = deployments
        self.settings = settings
        self.secret = settings.hook_secret
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["wrap"] = wrappable
        self.templates.env.filters["ansi"] = coloured

    # -- what every page shares ------------------------------------------------------------
    def page(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        response = self.templates.TemplateResponse(request, name, context, status_code=code)
        response.headers.update(HEADERS)
        return response

    def redirect(self, target: str) -> Response:
        response = RedirectResponse(target, status_code=303)
        response.headers.update(HEADERS)
        return response

    def refused(self, request: Request, status: int, message: str) -> HTMLResponse:
        return self.page(request, "refused.html", status, message=message)

    def session(self, request: Request) -> links.Session | HTMLResponse:
        """The session, or the page refusing a request without a valid one."""
        try:
            cookie = request.cookies.get(links.COOKIE)
            return links.open_session(self.secret, cookie, self.settings.clock())
        except links.LinkError as e:
            return self.refused(request, 401, e.message)

    def allowed(
        self, request: Request, deployment_id: str
    ) -> tuple[links.Session, Deployment] | HTMLResponse:
        """The session and the deployment it may see, or the page refusing the request."""
        who = self.session(request)
        if isinstance(who, Response):
            return who
        try:
            dep = self.deployments.get(deployment_id)
        except UnknownDeployment:
            dep = None
        if dep is not None and who.grants.allows(dep):
            return who, dep
        if who.grants.everything:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        opens = ", ".join(g.scope.words for g in who.grants.items)
        return self.refused(
            request, 403, f"this session opens {opens}; not deployment {deployment_id}"
        )

    def cookie(self, response: Response, request: Request, session: links.Session) -> None:
        response.set_cookie(
            links.COOKIE,
            links.session_cookie(self.secret, session),
            max_age=max(0, int(session.expires - self.settings.clock())),
            path="/ui/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def events_of(self, deployment_id: str) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        while page := self.deployments.events(deployment_id, found[-1].id if found else 0, PAGE):
            found += page
            if len(page) < PAGE:
                break
        return found

    # -- static files ----------------------------------------------------------------------
    def static(self, name: str) -> Response:
        if name not in STATIC:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers=HEADERS)

    def ansi_css(self) -> Response:
        return Response(ANSI_CSS, media_type="text/css", headers=HEADERS)

    # -- reading ---------------------------------------------------------------------------
    def listed(
        self, request: Request, project: str | None, status: str | None
    ) -> tuple[links.Session, dict[str, Any]] | HTMLResponse:
        """The list's rows for the session, filtered by project and status."""
        who = self.session(request)
        if isinstance(who, Response):
            return who
        grants = who.grants
        every: dict[str, Deployment] = {d.id: d for d in self.deployments.newest(None, LISTED)}
        if not grants.everything:  # older ones within the scope, which the newest may miss
            for project_id in grants.project_ids():
                every |= {d.id: d for d in self.deployments.newest(project_id, limit=LISTED)}
            for deployment_id in grants.deployment_ids():
                if deployment_id not in every:
                    with contextlib.suppress(UnknownDeployment):
                        every[deployment_id] = self.deployments.get(deployment_id)
        newest = sorted(every.values(), key=lambda d: d.created_at, reverse=True)
        visible = [d for d in newest if grants.allows(d)]
        status = status if status in STATUSES else None
        shown = [d for d in newest if not project or d.project_id == project]
        flight, rest = views.rows(shown, status, grants)
        return who, {
            "flight": flight,
            "rest": rest,
            "grants": grants,
            "project": project or "",
            "status": status or "",
            "statuses": STATUSES,
            "projects": sorted({d.project_id for d in visible}),
            "scope": "; ".join(g.scope.words for g in grants.items),
        }

    def listing(
        self,
        request: Request,
        project: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        found = self.listed(request, project, status)
        if isinstance(found, Response):
            return found
        return self.page(request, "list.html", **found[1])

    def rows(
        self,
        request: Request,
        project: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        """The list's tables alone: what its script reads every few seconds."""
        found = self.listed(request, project, status)
        if isinstance(found, Response):
            return found
        return self.page(request, "rows.html", **found[1])

    def deployment(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        return self.detail(request, deployment_id, "page.html")

    def summary(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        return self.detail(request, deployment_id, "summary.html")

    def detail(self, request: Request, deployment_id: str, name: str) -> Response:
        found = self.allowed(request, deployment_id)
        if isinstance(found, Response):
            return found
        who, dep = found
        events = self.events_of(deployment_id)
        tl = timeline.build(events, dep, self.settings.clock())
        lines = [line.wire() for line in views.log_lines(events)] if name == "page.html" else []
        return self.page(
            request,
            name,
            dep=dep,
            tl=tl,
            lanes=timeline.LANES,
            svgs=[timeline_svg.svg(tl, size) for size in (timeline_svg.WIDE, timeline_svg.NARROW)],
            failure=views.failure(dep, tl),
            icon=views.STATUS_ICONS[dep.status.value],
            refusals={a.value: refusal(a, dep) for a in Action},
            lines=lines,
            last_id=max((e.id for e in events), default=0),
            csrf=links.csrf_token(self.secret, who.sid),
        )

    def log(self, request: Request, deployment_id: DeploymentIdPath) -> Response:
        found = self.allowed(request, deployment_id)
        if isinstance(found, Response):
            return found
        text = views.log_text(self.events_of(deployment_id))
        disposition = f'attachment; filename="{deployment_id}.log"'
        return PlainTextResponse(text, headers={**HEADERS, "Content-Disposition": disposition})

    async def events(
        self,
        request: Request,
        deployment_id: DeploymentIdPath,
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        last_event_id: Annotated[int, Header(alias="Last-Event-ID", ge=0, le=MAX_ID)] = 0,
    ) -> Response:
        found = await run_in_threadpool(self.allowed, request, deployment_id)
        if isinstance(found, Response):
            return found
        start, tick_s = max(after, last_event_id), self.settings.sse_tick_s

        async def sse() -> AsyncIterator[ServerSentEvent]:
            async for batch in self.deployments.follow(deployment_id, start, tick_s):
                body = {
                    "lines": [line.wire() for line in views.log_lines(batch)],
                    "summary": any(e.type in views.SUMMARY_EVENTS for e in batch),
                }
                data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
                yield ServerSentEvent(data=data, id=str(batch[-1].id), event="lines", sep=SEP)
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
        found = await run_in_threadpool(self.allowed, request, deployment_id)
        if isinstance(found, Response):
            return found
        who, _ = found
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        try:
            links.check_csrf(self.secret, who.sid, x_csrf_token or (form.get("csrf") or [""])[0])
        except links.LinkError as e:
            return self.refused(request, 403, e.message)
        try:
            done = await run_in_threadpool(getattr(self.deployments, action.value), deployment_id)
        except Refused as e:
            return self.refused(request, 409, e.message)
        except UnknownDeployment:
            return self.refused(request, 404, f"no deployment {deployment_id}")
        response = self.redirect(f"/ui/deployments/{done.id}")
        if not who.grants.allows(done):  # a teardown it queued: the session may watch it
            now = self.settings.clock()
            self.cookie(response, request, links.granted(who, Scope.deployment(done.id), now))
        return response
