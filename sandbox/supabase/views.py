"""Pure projections of stored projects into the Management API's response shapes."""

from __future__ import annotations

from typing import Any

from sandbox.postgres import PostgresServer
from sandbox.supabase.errors import ApiError
from sandbox.supabase.state import SupabaseState, status

HEALTH_SERVICES = (
    "auth",
    "db",
    "db_postgres_user",
    "pooler",
    "realtime",
    "rest",
    "storage",
    "pg_bouncer",
)
GOTRUE_VERSION = "v2.177.0"
POSTGREST_VERSION = "12.2.12"
STORAGE_VERSION = "1.25.7"


def require(state: SupabaseState, ref: str) -> dict[str, Any]:
    project = state.get(ref)
    if project is None:
        raise ApiError(404, "Project not found")
    return project


def organization(slug: str, name: str) -> dict[str, Any]:
    """`OrganizationResponseV1` (the real API repeats the slug as the deprecated `id`)."""
    return {"id": slug, "slug": slug, "name": name}


def project_summary(project: dict[str, Any], now: float) -> dict[str, Any]:
    """`V1ProjectResponse`: what create answers (no `database` block)."""
    return {
        "id": project["ref"],
        "ref": project["ref"],
        "organization_id": project["organization_slug"],
        "organization_slug": project["organization_slug"],
        "name": project["name"],
        "region": project["region"],
        "created_at": project["created_at"],
        "status": status(project, now),
    }


def project_full(project: dict[str, Any], now: float, pg: PostgresServer) -> dict[str, Any]:
    """`V1ProjectWithDatabaseResponse`. `database.host` is the PostgreSQL server that really
    holds the project (the real API says `db.<ref>.supabase.co`, a name that would only send a
    client to DNS here); its port and user come from the pooler config."""
    return {
        **project_summary(project, now),
        "database": {
            "host": pg.host,
            "version": project["db_version"],
            "postgres_engine": project["postgres_engine"],
            "release_channel": "ga",
        },
    }


_DB_STATUS = {"INACTIVE": "UNKNOWN"}  # the database-level enum has no INACTIVE


def org_project(project: dict[str, Any], now: float) -> dict[str, Any]:
    """An item of `OrganizationProjectsResponse.projects`."""
    project_status = status(project, now)
    return {
        "ref": project["ref"],
        "name": project["name"],
        "cloud_provider": "AWS",
        "region": project["region"],
        "is_branch": False,
        "status": project_status,
        "inserted_at": project["created_at"],
        "databases": [
            {
                "infra_compute_size": "nano",
                "region": project["region"],
                "status": _DB_STATUS.get(project_status, project_status),
                "cloud_provider": "AWS",
                "identifier": project["ref"],
                "type": "PRIMARY",
                "disk_volume_size_gb": 8,
                "disk_type": "gp3",
            }
        ],
    }


def _health_info(service: str) -> dict[str, Any] | None:
    if service == "auth":
        return {
            "name": "GoTrue",
            "version": GOTRUE_VERSION,
            "description": "GoTrue is a user registration and authentication API",
        }
    if service == "realtime":
        return {
            "healthy": True,
            "db_connected": True,
            "replication_connected": True,
            "connected_cluster": 1,
        }
    if service == "rest":
        return {"db_schema": "public,graphql_public"}
    return None


def health(project: dict[str, Any], now: float, services: list[str]) -> list[dict[str, Any]]:
    """`V1ServiceHealthResponse` per asked service: COMING_UP until the project is up."""
    project_status = status(project, now)
    items: list[dict[str, Any]] = []
    for service in services:
        item: dict[str, Any] = {"name": service}
        if project_status == "ACTIVE_HEALTHY":
            item.update(healthy=True, status="ACTIVE_HEALTHY")
            info = _health_info(service)
            if info is not None:
                item["info"] = info
        elif project_status == "INACTIVE":
            item.update(healthy=False, status="UNHEALTHY", error="Project is paused")
        else:
            item.update(healthy=False, status="COMING_UP")
        items.append(item)
    return items


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def pooler(project: dict[str, Any], pg: PostgresServer) -> list[dict[str, Any]]:
    """The pooler config the CLI's `link` turns into `supabase/.temp/pooler-url` (every key it
    needs, CLI-TRAFFIC.md §1.6); it points straight at the project's database."""
    role, dbname = project["db_role"], project["db_name"]
    url = (
        f"postgresql://{role}:[YOUR-PASSWORD]@{_host_in_url(pg.host)}:{pg.port}/{dbname}"
        "?sslmode=disable"
    )
    return [
        {
            "identifier": project["ref"],
            "database_type": "PRIMARY",
            "is_using_scram_auth": True,
            "db_user": role,
            "db_host": pg.host,
            "db_port": pg.port,
            "db_name": dbname,
            "connection_string": url,
            "connectionString": url,
            "default_pool_size": 15,
            "max_client_conn": 200,
            "pool_mode": "session",
        }
    ]
