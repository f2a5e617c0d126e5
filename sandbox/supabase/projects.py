"""Management API: profile, organization, projects (create / read / rename / delete / pause /
restore), service health and the config reads `supabase link` makes."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.context import Context
from sandbox.supabase import database, views
from sandbox.supabase.errors import ApiError, int_param, json_object, string_field
from sandbox.supabase.regions import available_regions, parse_create
from sandbox.supabase.state import SupabaseState, status

SORTS = {
    "name_asc": (lambda p: p["name"].lower(), False),
    "name_desc": (lambda p: p["name"].lower(), True),
    "created_asc": (lambda p: p["created"], False),
    "created_desc": (lambda p: p["created"], True),
}
PROJECT_STATUSES = [
    "INACTIVE",
    "ACTIVE_HEALTHY",
    "ACTIVE_UNHEALTHY",
    "COMING_UP",
    "UNKNOWN",
    "GOING_DOWN",
    "INIT_FAILED",
    "REMOVED",
    "RESTORING",
    "UPGRADING",
    "PAUSING",
    "RESTORE_FAILED",
    "RESTARTING",
    "PAUSE_FAILED",
    "RESIZING",
]
STORAGE_CONFIG = {
    "fileSizeLimit": 52428800,
    "features": {"imageTransformation": {"enabled": True}, "s3Protocol": {"enabled": True}},
}


def project_db(project: dict[str, Any]) -> database.ProjectDb:
    return database.ProjectDb(role=project["db_role"], dbname=project["db_name"])


async def pause_project(ctx: Context, state: SupabaseState, project: dict[str, Any]) -> None:
    """`POST /pause` (and the admin API's pause, a free project idle for a week): INACTIVE, no
    logins to its database until it is restored."""
    if status(project, ctx.clock.now()) != "ACTIVE_HEALTHY":
        raise ApiError(400, "Project must be active to be paused.")
    await run_in_threadpool(database.set_login, ctx.postgres, project_db(project), False)
    state.update(project["ref"], paused=True)


class ProjectRoutes:
    def __init__(self, ctx: Context, state: SupabaseState) -> None:
        self.ctx = ctx
        self.state = state
        self.org_slug = ctx.identity.supabase_org_slug
        self.org_name = ctx.identity.supabase_org_name

    def _now(self) -> float:
        return self.ctx.clock.now()

    def _require_org(self, slug: str) -> None:
        if slug != self.org_slug:
            raise ApiError(404, f"Organization {slug} not found")

    def _project(self, request: Request) -> dict[str, Any]:
        return views.require(self.state, request.path_params["ref"])

    # -- account -----------------------------------------------------------------------------
    async def profile(self, request: Request) -> Response:
        return JSONResponse(
            {
                "gotrue_id": self.state.gotrue_id,
                "primary_email": f"{self.ctx.identity.github_user}@sandbox.invalid",
                "username": self.ctx.identity.github_user,
            }
        )

    async def organizations(self, request: Request) -> Response:
        return JSONResponse([views.organization(self.org_slug, self.org_name)])

    async def organization(self, request: Request) -> Response:
        self._require_org(request.path_params["slug"])
        return JSONResponse(
            {
                "id": self.org_slug,
                "name": self.org_name,
                "plan": "free",
                "opt_in_tags": [],
                "allowed_release_channels": ["ga"],
            }
        )

    async def organization_projects(self, request: Request) -> Response:
        self._require_org(request.path_params["slug"])
        offset = int_param(request, "offset", 0, 0, 1 << 31)
        limit = int_param(request, "limit", 100, 1, 100)
        sort = request.query_params.get("sort") or "name_asc"
        if sort not in SORTS:
            raise ApiError(400, f"sort must be one of: {', '.join(SORTS)}")
        wanted = [s for s in request.query_params.get("statuses", "").split(",") if s]
        unknown = [s for s in wanted if s not in PROJECT_STATUSES]
        if unknown:
            raise ApiError(400, f"Invalid project status: {unknown[0]}")
        search = request.query_params.get("search", "").lower()
        now = self._now()
        found = [
            p
            for p in self.state.projects()
            if search in p["name"].lower() and (not wanted or status(p, now) in wanted)
        ]
        key, reverse = SORTS[sort]
        found.sort(key=key, reverse=reverse)
        page = found[offset : offset + limit]
        return JSONResponse(
            {
                "projects": [views.org_project(p, now) for p in page],
                "pagination": {"count": len(found), "limit": limit, "offset": offset},
            }
        )

    # -- projects ----------------------------------------------------------------------------
    async def list_projects(self, request: Request) -> Response:
        now = self._now()
        return JSONResponse(
            [views.project_full(p, now, self.ctx.postgres) for p in self.state.projects()]
        )

    async def create_project(self, request: Request) -> Response:
        wanted = parse_create(await json_object(request))
        self._require_org(wanted.organization_slug)
        ref = self.state.reserve_ref()
        expose = self.state.defaults == "2025"
        db = await run_in_threadpool(
            database.provision, self.ctx.postgres, ref, wanted.db_pass, expose
        )
        project = self.state.add(
            ref, wanted.name, wanted.organization_slug, wanted.region, wanted.db_pass, db
        )
        body = views.project_summary(project, self._now())
        # The recorded real create answers UNKNOWN; reads say COMING_UP until it is up.
        body["status"] = "UNKNOWN"
        return JSONResponse(body, status_code=201)

    async def regions(self, request: Request) -> Response:
        slug = request.query_params.get("organization_slug")
        if not slug:
            raise ApiError(400, "organization_slug is required")
        self._require_org(slug)
        return JSONResponse(available_regions())

    async def get_project(self, request: Request) -> Response:
        return JSONResponse(
            views.project_full(self._project(request), self._now(), self.ctx.postgres)
        )

    async def update_project(self, request: Request) -> Response:
        project = self._project(request)
        name = string_field(await json_object(request), "name", required=True, max_len=256)
        project = self.state.update(project["ref"], name=name)
        return JSONResponse({"id": project["id"], "ref": project["ref"], "name": name})

    async def delete_project(self, request: Request) -> Response:
        project = self._project(request)
        if status(project, self._now()) in ("COMING_UP", "RESTORING"):
            raise ApiError(400, "Project not ready for deletion.")
        await run_in_threadpool(database.drop, self.ctx.postgres, project_db(project))
        self.state.remove(project["ref"])
        return JSONResponse(
            {
                "id": project["id"],
                "ref": project["ref"],
                "name": project["name"],
                "slug": project["ref"],
            }
        )

    async def pause(self, request: Request) -> Response:
        await pause_project(self.ctx, self.state, self._project(request))
        return Response(status_code=200)

    async def restore_versions(self, request: Request) -> Response:
        self._project(request)
        return JSONResponse({"available_versions": []})

    async def restore(self, request: Request) -> Response:
        project = self._project(request)
        if not project.get("paused"):
            raise ApiError(400, "Project is not paused.")
        await run_in_threadpool(database.set_login, self.ctx.postgres, project_db(project), True)
        self.state.restart_provisioning(project["ref"])
        return Response(status_code=200)

    # -- health, keys, config ----------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        project = self._project(request)
        services = [
            s for raw in request.query_params.getlist("services") for s in raw.split(",") if s
        ]
        if not services:
            raise ApiError(400, "services must contain at least 1 elements")
        unknown = [s for s in services if s not in views.HEALTH_SERVICES]
        if unknown:
            raise ApiError(
                400, f"each value in services must be one of: {', '.join(views.HEALTH_SERVICES)}"
            )
        int_param(request, "timeout_ms", 0, 0, 10000)
        return JSONResponse(views.health(project, self._now(), services))

    async def storage_config(self, request: Request) -> Response:
        self._project(request)
        return JSONResponse(STORAGE_CONFIG)

    async def pooler_config(self, request: Request) -> Response:
        return JSONResponse(views.pooler(self._project(request), self.ctx.postgres))

    def routes(self) -> list[Route]:
        base = "/v1/projects/{ref}"
        return [
            Route("/v1/profile", self.profile, methods=["GET"]),
            Route("/v1/organizations", self.organizations, methods=["GET"]),
            Route("/v1/organizations/{slug}", self.organization, methods=["GET"]),
            Route("/v1/organizations/{slug}/projects", self.organization_projects, methods=["GET"]),
            Route("/v1/projects", self.list_projects, methods=["GET"]),
            Route("/v1/projects", self.create_project, methods=["POST"]),
            Route("/v1/projects/available-regions", self.regions, methods=["GET"]),
            Route(base, self.get_project, methods=["GET"]),
            Route(base, self.update_project, methods=["PATCH"]),
            Route(base, self.delete_project, methods=["DELETE"]),
            Route(f"{base}/pause", self.pause, methods=["POST"]),
            Route(f"{base}/restore", self.restore_versions, methods=["GET"]),
            Route(f"{base}/restore", self.restore, methods=["POST"]),
            Route(f"{base}/health", self.health, methods=["GET"]),
            Route(f"{base}/config/storage", self.storage_config, methods=["GET"]),
            Route(f"{base}/config/database/pooler", self.pooler_config, methods=["GET"]),
        ]
