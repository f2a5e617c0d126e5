"""PostgREST's root (`GET /rest/v1/`): its OpenAPI 2.0 document of the exposed schema.

As PostgREST builds it, the document lists only what the caller's role may read: each table or
view of `public` the role has SELECT on becomes a path (`/items`) with a definition of its
columns.

Since 2026-03-11 the platform refuses the document to the publishable and anon keys: only a
secret (or the legacy service-role) key reads it (changelog 42949; the 403 status is the
sandbox's choice, the body is Supabase's). A project on the 2025 defaults still serves it to
every key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.context import Context
from sandbox.supabase import views
from sandbox.supabase.api_auth import ApiKey, GatewayRefused, JwtRefused, caller
from sandbox.supabase.platform import ensure_platform
from sandbox.supabase.rest import from_postgres, jwt_refused, set_claims
from sandbox.supabase.state import defaults_2025

# Tables, views and their columns in `public` that the current role (after SET ROLE) may read.
_READABLE = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND has_table_privilege(c.oid, 'SELECT')
ORDER BY c.relname, a.attnum
"""


def _document(host: str, columns: list[tuple[str, str, str, bool]]) -> dict[str, Any]:
    definitions: dict[str, Any] = {}
    for table, column, type_name, not_null in columns:
        definition = definitions.setdefault(
            table, {"type": "object", "required": [], "properties": {}}
        )
        definition["properties"][column] = {"format": type_name, "type": "string"}
        if not_null:
            definition["required"].append(column)
    paths: dict[str, Any] = {"/": {"get": {"summary": "OpenAPI description (this document)"}}}
    for table in definitions:
        paths[f"/{table}"] = {"get": {"tags": [table]}}
    return {
        "swagger": "2.0",
        "info": {
            "description": "",
            "title": "standard public schema",
            "version": views.POSTGREST_VERSION,
        },
        "host": host,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json"],
        "produces": ["application/json", "application/vnd.pgrst.object+json"],
        "paths": paths,
        "definitions": definitions,
    }


FORBIDDEN = GatewayRefused(
    403,
    "Access to schema is forbidden",
    "Accessing the schema via the Data API is only allowed using a secret API key.",
)


def rest_root(
    ctx: Context,
) -> Callable[[Request, dict[str, Any], ApiKey], Awaitable[Response]]:
    async def handle(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        expose = defaults_2025(project)
        if not key.privileged and not expose:
            return FORBIDDEN.response()
        try:
            who = caller(request, project, key)
        except JwtRefused as e:
            return jwt_refused(e).response()
        pg, dbname, owner = ctx.postgres, project["db_name"], project["db_role"]

        def run() -> list[tuple[str, str, str, bool]]:
            ensure_platform(pg, owner, dbname, expose)
            with pg.admin(dbname) as conn, conn.transaction():
                set_claims(conn, who, request.method, request.url.path)
                return [
                    (str(t), str(c), str(f), bool(n))
                    for t, c, f, n in conn.execute(_READABLE).fetchall()
                ]

        try:
            columns = await run_in_threadpool(run)
        except psycopg.Error as e:
            return from_postgres(e, who.role).response()
        return JSONResponse(
            _document(request.url.netloc, columns), media_type="application/openapi+json"
        )

    return handle
