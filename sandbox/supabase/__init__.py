"""The Supabase emulator: the Management API (plain HTTP on the supabase port), each project's
tenant endpoints (on the apps server, `/sb/<ref>`), and one real PostgreSQL database per project.

Choices where the real API is not pinned down by the spec or the recordings:
- Project names need not be unique (the real API allows duplicates; refs identify projects).
- Create answers `status: UNKNOWN` (as recorded); reads say COMING_UP until the provisioning
  delay has passed, then ACTIVE_HEALTHY. Deleting before that answers the recorded
  `400 {"message": "Project not ready for deletion."}`.
- `GET .../api-keys` answers `200 []` until the `supabase.api_keys` delay has passed.
- New projects behave as Supabase does today (`state`: the `defaults` setting); the 2025
  behaviour is `forge-sandbox serve --supabase-defaults 2025`, or per project the admin API.
- SQL endpoints (`/database/query`, `/database/migrations`) answer 400 until the project is up.
- The project's database is reachable (with its `db_pass`) as soon as create returns.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from sandbox.context import Context, Service
from sandbox.supabase import database, keys
from sandbox.supabase.admin import admin_routes
from sandbox.supabase.api_keys import ApiKeyRoutes
from sandbox.supabase.auth_config import AuthConfigRoutes
from sandbox.supabase.auth_config import config as auth_config
from sandbox.supabase.errors import (
    ApiError,
    api_error_handler,
    error_body,
    http_error_handler,
    internal_error_handler,
)
from sandbox.supabase.guard import GuardMiddleware
from sandbox.supabase.profile import write_profile
from sandbox.supabase.projects import ProjectRoutes, project_db
from sandbox.supabase.ratelimit import RateLimiter
from sandbox.supabase.realtime import Realtime
from sandbox.supabase.realtime_feed import check_wal_level
from sandbox.supabase.sql import SqlRoutes
from sandbox.supabase.state import SupabaseState, defaults_2025, status
from sandbox.supabase.tenant import tenant_routes

log = logging.getLogger("forge-sandbox")


def _keys(material: dict[str, Any]) -> dict[str, Any]:
    """The keys by role, and what tests sign users' tokens with."""
    publishable, secret = keys.first(material, "publishable"), keys.first(material, "secret")
    return {
        "anon": material["anon"],
        "service_role": material["service_role"],
        "publishable": publishable["key"] if publishable else None,
        "secret": secret["key"] if secret else None,
        "legacy_enabled": material["legacy_enabled"],
        # What signs the project's JWTs: tests mint users' tokens with them, as one does with
        # the keys a local Supabase stack prints.
        "jwt_secret": material["jwt_secret"],
        "signing_key": {
            "kid": material["signing"]["id"],
            "private_pem": material["signing"]["private_pem"],
        },
    }


def _inventory(ctx: Context, state: SupabaseState) -> dict[str, Any]:
    """Every project with its password, API keys (all of them in `api_keys`, by role in `keys`),
    signing keys, its defaults, its auth URLs and the migrations its database has applied."""
    now = ctx.clock.now()
    projects = []
    for project in state.projects():
        auth = auth_config(project.get("auth_config", {}))
        entry: dict[str, Any] = {
            "ref": project["ref"],
            "name": project["name"],
            "organization_slug": project["organization_slug"],
            "region": project["region"],
            "status": status(project, now),
            "db_pass": project["db_pass"],
            "db_user": project["db_role"],
            "db_name": project["db_name"],
            "defaults": "2025" if defaults_2025(project) else "2026",
            "api_keys": keys.all_keys(project["keys"]),
            "keys": _keys(project["keys"]),
            "jwt_secret": project["keys"]["jwt_secret"],
            "auth": {k: auth[k] for k in ("site_url", "uri_allow_list")},
            "created_at": project["created_at"],
        }
        try:
            entry["migrations"] = database.history(ctx.postgres, project_db(project))
        except psycopg.Error as e:
            entry["migrations"] = []
            entry["migrations_error"] = str(e).strip()
        projects.append(entry)
    return {"organization": ctx.identity.supabase_org_slug, "projects": projects}


def build(ctx: Context) -> Service:
    service_dir = ctx.service_dir("supabase")
    write_profile(ctx, service_dir / "profile.yaml")
    state = SupabaseState(service_dir / "state.json", ctx.clock, ctx.supabase_defaults)
    limiter = RateLimiter(now=ctx.clock.now)
    realtime = Realtime(ctx, state)
    problem = check_wal_level(ctx.postgres)
    if problem:  # a cluster given with --postgres-url; REST and the rest still work
        log.warning("%s: postgres_changes joins will be refused", problem)
    app = Starlette(
        routes=[
            *ProjectRoutes(ctx, state).routes(),
            *ApiKeyRoutes(ctx, state).routes(),
            *AuthConfigRoutes(ctx, state).routes(),
            *SqlRoutes(ctx, state).routes(),
        ],
        middleware=[
            Middleware(
                GuardMiddleware, token=ctx.identity.supabase_token, limiter=limiter, state=state
            )
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
    )
    return Service(
        name="supabase",
        app=app,
        error_body=error_body,
        resources=lambda: _inventory(ctx, state),
        apps_routes=[
            *admin_routes(ctx, limiter, state, realtime),
            *realtime.routes(),
            *tenant_routes(ctx, state),
        ],
    )
