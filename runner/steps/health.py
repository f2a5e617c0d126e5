"""Is the deploy live? The app answers 2xx on its health path, each table the app queries
answers its publishable key through supabase-py (`health_rest`), and the auth service's URLs
point at the live app (`supabase_auth.verify`).

Requests go out on sessions of their own: the CA file of the run, no proxy from the
environment, and no Authorization header, so no provider token ever reaches the app. The app's
URL is read as `health_wall` reads it: redirects only within its host, and Vercel's login wall
named as such, never taken for the app (with the project's bypass secret, if it has one). Transient
failures (5xx, 429, a dropped connection) are retried a few times with the run's wait; what is
returned is the verdict and the evidence (URL, status, a masked excerpt of the body, the error),
never a secret.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import requests

from runner.context import RunContext
from runner.http import new_session
from runner.steps import health_rest, health_wall, supabase_auth

log = logging.getLogger("forge.runner.health")

STEP = "health"
ATTEMPTS = 3
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Health:
    ok: bool
    evidence: list[dict[str, Any]] = field(default_factory=list)


def session(ctx: RunContext) -> requests.Session:
    """The run's TLS trust, no token: `new_session` minus its Authorization header."""
    http = new_session("", ctx.settings.run.ca_file)
    http.headers.pop("Authorization", None)
    return http


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def _probe(
    ctx: RunContext,
    http: requests.Session,
    check: str,
    url: str,
    wall: health_wall.Wall,
) -> dict[str, Any]:
    """GET `url` up to ATTEMPTS times while the failure looks transient; the last answer's
    evidence."""
    mask = ctx.masker.mask
    evidence: dict[str, Any] = {"check": check, "url": mask(url)}
    for attempt in range(1, ATTEMPTS + 1):
        evidence.update(attempts=attempt, status=None, body=None, error=None)
        try:
            answer = health_wall.get(http, url, wall, (10.0, ctx.settings.run.http_timeout_s))
        except requests.RequestException as e:
            evidence["error"] = mask(f"{type(e).__name__}: {e}")[:EXCERPT_CHARS]
            transient = True
        else:
            response = answer.response
            if answer.problem is not None or response is None:
                evidence["status"] = None if response is None else response.status_code
                evidence["error"] = mask(answer.problem or "no answer")
                evidence["login_wall"] = answer.login_wall
                break
            evidence["status"] = response.status_code
            evidence["body"] = mask(response.text[: EXCERPT_CHARS * 4])[:EXCERPT_CHARS]
            if 200 <= response.status_code < 300:
                evidence["ok"] = True
                return evidence
            transient = response.status_code >= 500 or response.status_code == 429
        log.info("health %s: attempt %d failed (%s)", check, attempt, evidence["status"])
        if not transient or attempt == ATTEMPTS:
            break
        backoff(ctx, attempt)
    evidence["ok"] = False
    return evidence


def backoff(ctx: RunContext, attempt: int) -> None:
    ctx.wait(ctx.policy.wait(None, attempt))  # 1 s, 2 s (scaled like every retry)


def check(
    ctx: RunContext,
    app_url: str,
    path: str,
    api: health_rest.DataApi,
    ref: str | None = None,
    wall: health_wall.Wall | None = None,
) -> Health:
    """GET `app_url + path` (2xx), read the tables the app queries with the publishable key,
    and (given the project's `ref`) read the auth service's URLs back. `wall`: the Vercel
    project's protection of production and its bypass secret."""
    ctx.masker.register(api.publishable)
    ctx.masker.register(api.secret)
    wall = wall or health_wall.Wall(None)
    if wall.bypass:
        ctx.masker.register(wall.bypass)
    with session(ctx) as http:
        app = _probe(ctx, http, "app", _join(app_url, path), wall)
    rest = health_rest.probe(ctx, api, ATTEMPTS, EXCERPT_CHARS, lambda n: backoff(ctx, n))
    evidence = [app, rest]
    if ref is not None:
        evidence.append(supabase_auth.verify(ctx, ref, app_url))
    ok = all(item["ok"] for item in evidence)
    ctx.progress(
        STEP,
        "healthy" if ok else f"unhealthy: {app['error']}" if app["error"] else "unhealthy",
        checks={item["check"]: item["status"] for item in evidence},
    )
    return Health(ok, evidence)
