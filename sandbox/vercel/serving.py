"""Serving deployments over HTTPS on the apps server.

`/d/<slug>/...` serves one deployment, `/p/<project>/...` the project's production alias,
`/_vercel/inspect/<id>` is the inspector URL. A READY deployment whose app declares env vars
the project lacks answers 500 on every path (READY but broken, as in the field). A URL the
project's deployment protection covers answers Vercel's login wall (`protection`).
"""

from __future__ import annotations

import html
import logging
import mimetypes
import posixpath
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.vercel import lifecycle, protection
from sandbox.vercel.state import VercelState

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("forge-sandbox.vercel")

TEXTUAL = ("application/javascript", "application/json", "image/svg+xml", "application/xml")


def content_type(path: str) -> str:
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if guessed.startswith("text/") or guessed in TEXTUAL:
        return f"{guessed}; charset=utf-8"
    return guessed


def _hidden(path: str) -> bool:
    return any(part.startswith(".") and part != ".well-known" for part in path.split("/"))


def _join(*parts: str | None) -> str:
    kept = [p.strip("/") for p in parts if p and p.strip("/")]
    if not kept:
        return ""
    joined = posixpath.normpath(posixpath.join(*kept))
    return "" if joined == "." else joined


def _under(root: str, path: str) -> bool:
    return root == "" or path.startswith(root + "/")


def served_roots(deployment: dict[str, Any]) -> tuple[list[str], bool]:
    """Directories of the upload that are served, and whether the app is a static site."""
    manifest: dict[str, str] = deployment["files"]
    settings = deployment.get("projectSettings") or {}
    base = _join(settings.get("rootDirectory"))
    if deployment.get("prebuilt"):
        roots = [_join(base, ".vercel/output/static")]
    elif settings.get("outputDirectory"):
        roots = [_join(base, settings["outputDirectory"])]
    elif any(_under(_join(base, "public"), path) for path in manifest):
        roots = [_join(base, "public")]
    else:
        roots = [base]
    static = any(_join(root, "index.html") in manifest for root in roots)
    if not static and roots == [base]:
        roots = []  # an app's source tree is not served as files
    return roots, static


def _candidates(path: str) -> list[str]:
    clean = path.strip("/")
    if not clean:
        return ["index.html"]
    if path.endswith("/"):
        return [f"{clean}/index.html"]
    return [clean, f"{clean}.html", f"{clean}/index.html"]


def _app_page(deployment: dict[str, Any]) -> str:
    name = html.escape(deployment["name"])
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>'
        f"{name}</title></head>\n<body><h1>{name}</h1>\n"
        f"<p>Deployment <code>{html.escape(deployment['id'])}</code> "
        f"({html.escape(deployment.get('target') or 'preview')}) is live.</p>\n</body></html>\n"
    )


def _guarded(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except Exception:
            log.exception("vercel apps: %s failed", request.url.path)
            return PlainTextResponse("500: sandbox error while serving\n", status_code=500)

    return wrapper


def routes(state: VercelState) -> list[BaseRoute]:
    def headers(deployment: dict[str, Any]) -> dict[str, str]:
        return {"x-vercel-id": f"iad1::{deployment['id']}"}

    async def serve(deployment: dict[str, Any], path: str) -> Response:
        now = state.now_ms()
        ready = lifecycle.ready_state(deployment, now)
        if ready != "READY":
            return PlainTextResponse(
                f"404: deployment not ready (the deployment is {ready})\n",
                status_code=404,
                headers={**headers(deployment), "x-vercel-error": "DEPLOYMENT_NOT_READY"},
            )
        if deployment.get("missingEnv"):
            missing = ", ".join(deployment["missingEnv"])
            return PlainTextResponse(
                f"500: INTERNAL_SERVER_ERROR\nMissing required environment variables: {missing}\n",
                status_code=500,
                headers={**headers(deployment), "x-vercel-error": "FUNCTION_INVOCATION_FAILED"},
            )
        manifest: dict[str, str] = deployment["files"]
        roots, static = served_roots(deployment)
        for root in roots:
            for candidate in _candidates(path):
                full = _join(root, candidate)
                if full in manifest and not _hidden(candidate) and state.files.has(manifest[full]):
                    body = await run_in_threadpool(state.files.read, manifest[full])
                    return Response(
                        body, media_type=content_type(full), headers=headers(deployment)
                    )
        clean = path.strip("/")
        if not static and clean == "":
            return Response(
                _app_page(deployment),
                media_type="text/html; charset=utf-8",
                headers=headers(deployment),
            )
        if not static and clean == "api/health":
            return JSONResponse({"status": "ok"}, headers=headers(deployment))
        for root in roots:
            page = manifest.get(_join(root, "404.html"))
            if page and state.files.has(page):
                body = await run_in_threadpool(state.files.read, page)
                return Response(
                    body,
                    status_code=404,
                    media_type="text/html; charset=utf-8",
                    headers=headers(deployment),
                )
        return PlainTextResponse(
            "404: NOT_FOUND\n",
            status_code=404,
            headers={**headers(deployment), "x-vercel-error": "NOT_FOUND"},
        )

    def not_found(message: str) -> Response:
        return PlainTextResponse(
            f"404: {message}\n", status_code=404, headers={"x-vercel-error": "DEPLOYMENT_NOT_FOUND"}
        )

    def by_slug(slug: str) -> dict[str, Any] | None:
        for deployment in state.deployments.values():
            if deployment["slug"] == slug:
                return deployment
        return None

    async def to_slash(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.url.path}/{query}", status_code=308)

    def walled(request: Request, deployment: dict[str, Any], via_alias: bool) -> Response | None:
        project = state.projects.get(deployment["projectId"]) or {}
        if protection.covers(project, deployment, via_alias) and not protection.bypassed(
            project, request
        ):
            return protection.wall(request, deployment)
        return None

    async def deployment_file(request: Request) -> Response:
        deployment = by_slug(request.path_params["slug"])
        if deployment is None:
            return not_found("The deployment could not be found")
        return walled(request, deployment, False) or await serve(
            deployment, request.path_params["path"]
        )

    async def production_file(request: Request) -> Response:
        project = state.find_project(request.path_params["name"])
        if project is None:
            return not_found("The project could not be found")
        now = state.now_ms()
        current = lifecycle.current_production(
            project, state.project_deployments(project["id"]), now
        )
        if current is None:
            return not_found("The project has no production deployment yet")
        return walled(request, current, True) or await serve(current, request.path_params["path"])

    async def inspect(request: Request) -> Response:
        deployment = state.deployments.get(request.path_params["id"])
        if deployment is None:
            return not_found("The deployment could not be found")
        now = state.now_ms()
        lines = [
            f"Deployment {deployment['id']} of {deployment['name']}",
            f"url: https://{deployment['url']}",
            f"target: {deployment.get('target') or 'preview'}",
            f"state: {lifecycle.ready_state(deployment, now)}",
            "",
            *[
                f"{e['type']}: {e['text']}"
                for e in lifecycle.build_log(deployment)
                if e["created"] <= now
            ],
        ]
        return PlainTextResponse("\n".join(lines) + "\n")

    return [
        Route("/d/{slug}", to_slash, methods=["GET"]),
        Route("/d/{slug}/{path:path}", _guarded(deployment_file), methods=["GET"]),
        Route("/p/{name}", to_slash, methods=["GET"]),
        Route("/p/{name}/{path:path}", _guarded(production_file), methods=["GET"]),
        Route("/_vercel/inspect/{id}", _guarded(inspect), methods=["GET"]),
    ]
