"""Deployment protection (Vercel Authentication, `ssoProtection`) on the served URLs.

A project's `ssoProtection.deploymentType` decides which URLs sit behind Vercel login:
`preview` (Standard protection: preview deployments; production public), `all` (everything),
`prod_deployment_urls_and_all_previews` (previews and the per-deployment URLs of production,
not the production domain), `all_except_custom_domains` (everything: the sandbox has no custom
domains, its production alias stands for `<project>.vercel.app`); null protects nothing.

A protected URL answers as Vercel's does: a browser asking for a page (`Accept: text/html`) is
redirected (302) to `https://vercel.com/sso-api?url=...`, anything else gets 401 with the login
page. A request carrying one of the project's automation bypass secrets (`protectionBypass`) in
the `x-vercel-protection-bypass` header or query parameter is served.
"""

from __future__ import annotations

import hmac
import html
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

BYPASS = "x-vercel-protection-bypass"
SSO_URL = "https://vercel.com/sso-api"


def covers(project: dict[str, Any], deployment: dict[str, Any], via_alias: bool) -> bool:
    """Is this URL of `deployment` behind Vercel login? `via_alias`: the production alias."""
    kind = (project.get("ssoProtection") or {}).get("deploymentType")
    preview = deployment.get("target") != "production"
    if kind in ("all", "all_except_custom_domains"):
        return True
    if kind == "prod_deployment_urls_and_all_previews":
        return preview or not via_alias
    if kind == "preview":
        return preview
    return False


def bypassed(project: dict[str, Any], request: Request) -> bool:
    offered = request.headers.get(BYPASS) or request.query_params.get(BYPASS) or ""
    return any(
        hmac.compare_digest(offered.encode(), secret.encode())
        for secret in (project.get("protectionBypass") or {})
    )


def wall(request: Request, deployment: dict[str, Any]) -> Response:
    nonce = secrets.token_hex(16)
    headers = {
        "x-vercel-id": f"iad1::{deployment['id']}",
        "set-cookie": f"_vercel_sso_nonce={nonce}; Path=/; Secure; HttpOnly; SameSite=Lax",
        "cache-control": "no-store, max-age=0",
    }
    if "text/html" in request.headers.get("accept", ""):
        query = urlencode({"url": str(request.url), "nonce": nonce})
        return RedirectResponse(f"{SSO_URL}?{query}", status_code=302, headers=headers)
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Authentication Required'
        "</title></head><body><h1>Authentication Required</h1><p>Log in to Vercel to view "
        f"<code>{html.escape(deployment['name'])}</code>.</p></body></html>\n"
    )
    return HTMLResponse(page, status_code=401, headers=headers)
