"""Signing in with a link (`dispatcher.ui.links`), from wherever the link was clicked.

A link is almost always opened from another site (a chat, an e-mail, a dashboard), and a
browser does not send a SameSite=Strict cookie on a navigation that started on another site,
nor on the redirects that follow it, nor on reloading the page it led to. So the link's request
changes nothing: `GET /ui/login` checks the signature and answers a page of ours (`signin.html`)
whose form posts the link back to us, submitted by the page's script at once (a button without
script). That post starts on our own page, so it is same-site: it sees the session cookie a
browser already has, and the cookie it sets is sent on everything after it, reloads included.

`POST /ui/login`, in this order:
1. The link must be ours (its signature); the post must come from our page (`Sec-Fetch-Site`
   same-origin, when the browser says).
2. A session that already allows what the link opens goes through, the link used or expired:
   the browser that used a link can open it again.
3. Otherwise the link must be fresh and unused (it is remembered, as the hook's signatures are),
   and the session gets its scope (`links.granted`).

Why not a SameSite=Lax session for reads, Strict for writes: the link would be spent by its
first GET, which chat previews and mail scanners make before a person clicks, and two cookies
would keep two rules; here the one cookie stays Strict for every route, and only a post from our
own page spends a link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from dispatcher.core.errors import UnknownDeployment
from dispatcher.ui import links
from dispatcher.ui.scopes import Scope

if TYPE_CHECKING:
    from dispatcher.ui.routes import Pages

SAME = ("same-origin", "none")  # Sec-Fetch-Site of a post from our own page (none: typed)
LinkScope = Annotated[str, Query(max_length=200)]


def add_routes(found: APIRouter, pages: Pages) -> None:
    async def landing(
        request: Request,
        scope: LinkScope = "",
        exp: Annotated[str, Query(max_length=20)] = "",
        nonce: Annotated[str, Query(max_length=64)] = "",
        sig: Annotated[str, Query(max_length=80)] = "",
    ) -> Response:
        try:
            link = links.check_link(pages.secret, scope, exp, nonce, sig)
        except links.LinkError as e:
            return pages.refused(request, 401, e.message)
        current = _current(pages, request)  # a typed or same-site visit sends the cookie
        if current is not None and await run_in_threadpool(_covers, pages, current, link.scope):
            return pages.redirect(link.scope.target)
        return pages.page(request, "signin.html", link=link)

    async def sign_in(
        request: Request, sec_fetch_site: Annotated[str | None, Header()] = None
    ) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = [(form.get(name) or [""])[0][:200] for name in ("scope", "exp", "nonce", "sig")]
        try:
            link = links.check_link(pages.secret, *given)
        except links.LinkError as e:
            return pages.refused(request, 401, e.message)
        if sec_fetch_site is not None and sec_fetch_site not in SAME:
            return pages.refused(request, 403, "sign in from the link's own page")
        current = _current(pages, request)
        if current is not None and await run_in_threadpool(_covers, pages, current, link.scope):
            return pages.redirect(link.scope.target)
        now = pages.settings.clock()
        try:
            links.check_fresh(link, now)
        except links.LinkError as e:
            return pages.refused(request, 401, e.message)
        remember = pages.deployments.remember_signature
        if not await run_in_threadpool(remember, link.signature, link.expires):
            return pages.refused(request, 401, "this link was used already: ask for a new one")
        response = pages.redirect(link.scope.target)
        pages.cookie(response, request, links.granted(current, link.scope, now))
        return response

    found.add_api_route("/login", landing, methods=["GET"])
    found.add_api_route("/login", sign_in, methods=["POST"])


def _current(pages: Pages, request: Request) -> links.Session | None:
    try:
        cookie = request.cookies.get(links.COOKIE)
        return links.open_session(pages.secret, cookie, pages.settings.clock())
    except links.LinkError:
        return None


def _covers(pages: Pages, session: links.Session, scope: Scope) -> bool:
    """Whether the session already allows everything `scope` opens."""
    if session.grants.covers(scope):
        return True
    if scope.kind != "deployment":
        return False
    try:
        return session.grants.allows(pages.deployments.get(scope.name))
    except UnknownDeployment:
        return False
