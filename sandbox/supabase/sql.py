"""Management API: SQL in a project's database (`/database/query`) and its migration history
(`/database/migrations`, the partner endpoints; allowed for the sandbox token)."""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.context import Context
from sandbox.supabase import database, views
from sandbox.supabase.errors import ApiError, json_object, string_field
from sandbox.supabase.projects import project_db
from sandbox.supabase.state import SupabaseState, status

_VERSION = re.compile(r"^\d+$")


class SqlRoutes:
    def __init__(self, ctx: Context, state: SupabaseState) -> None:
        self.ctx = ctx
        self.state = state

    def _live_project(self, request: Request) -> dict[str, Any]:
        """The project, which must be up: its database is not served before that."""
        project = views.require(self.state, request.path_params["ref"])
        current = status(project, self.ctx.clock.now())
        if current != "ACTIVE_HEALTHY":
            raise ApiError(400, f"Project is not ready: its status is {current}.")
        return project

    async def query(self, request: Request) -> Response:
        body = await json_object(request)
        read_only = body.get("read_only", False)
        if not isinstance(read_only, bool):
            raise ApiError(400, "read_only must be a boolean value")
        return await self._run(request, body, read_only)

    async def read_only_query(self, request: Request) -> Response:
        """`POST .../database/query/read-only`: `{query, parameters?}` in a read-only
        transaction (what a token holding only `database_read` may run)."""
        body = await json_object(request)
        body.pop("read_only", None)
        return await self._run(request, body, True)

    async def _run(self, request: Request, body: dict[str, Any], read_only: bool) -> Response:
        project = self._live_project(request)
        query = string_field(body, "query", required=True)
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, list):
            raise ApiError(400, "parameters must be an array")
        try:
            rows = await run_in_threadpool(
                database.run_query,
                self.ctx.postgres,
                project_db(project),
                query,
                parameters,
                read_only,
            )
        except database.QueryError as e:
            raise ApiError(400, str(e)) from e
        return JSONResponse(rows, status_code=201)

    async def list_migrations(self, request: Request) -> Response:
        project = self._live_project(request)
        rows = await run_in_threadpool(database.history, self.ctx.postgres, project_db(project))
        return JSONResponse(rows)

    async def get_migration(self, request: Request) -> Response:
        project = self._live_project(request)
        version = request.path_params["version"]
        if not _VERSION.match(version):
            raise ApiError(400, "version must match /^\\d+$/")
        row = await run_in_threadpool(
            database.migration, self.ctx.postgres, project_db(project), version
        )
        if row is None:
            raise ApiError(404, f"Migration {version} not found")
        return JSONResponse(row)

    async def _record(self, request: Request, apply: bool) -> Response:
        project = self._live_project(request)
        body = await json_object(request)
        query = string_field(body, "query", required=True)
        name = string_field(body, "name", required=False)
        rollback = string_field(body, "rollback", required=False) or None
        key = request.headers.get("idempotency-key") or None
        try:
            await run_in_threadpool(
                database.record_migration,
                self.ctx.postgres,
                project_db(project),
                query,
                name,
                rollback,
                key,
                apply,
            )
        except database.QueryError as e:
            raise ApiError(400, str(e)) from e
        return Response(status_code=200)

    async def apply_migration(self, request: Request) -> Response:
        return await self._record(request, apply=True)

    async def upsert_migration(self, request: Request) -> Response:
        return await self._record(request, apply=False)

    def routes(self) -> list[Route]:
        base = "/v1/projects/{ref}/database"
        return [
            Route(f"{base}/query", self.query, methods=["POST"]),
            Route(f"{base}/query/read-only", self.read_only_query, methods=["POST"]),
            Route(f"{base}/migrations", self.list_migrations, methods=["GET"]),
            Route(f"{base}/migrations", self.apply_migration, methods=["POST"]),
            Route(f"{base}/migrations", self.upsert_migration, methods=["PUT"]),
            Route(f"{base}/migrations/{{version}}", self.get_migration, methods=["GET"]),
        ]
