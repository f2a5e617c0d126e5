"""The Supabase Management API client: projects, health, API keys, pooler config, migrations.

Takes a `ProviderHttp` (base URL, session, retries, the one status→error mapping) and returns
frozen dataclasses. Facts it relies on (../shared/specs/README.md, supabase-management.json):
- `POST /v1/projects` takes `name`, `db_pass`, `organization_slug` (`organization_id` is
  deprecated; `SUPABASE_ORG_ID` holds the slug) and `region_selection` (plain `region` is
  deprecated); it answers 201 with `status: UNKNOWN` and no `database` block. Names need not be
  unique: the ref identifies a project.
- `GET /v1/projects` is one unpaged array of every project the token sees, in every org.
- `GET .../api-keys?reveal=true` answers `[]` until keys are minted (the sandbox) or 500 right
  after create (the real API): both mean "not yet".
- `GET .../database/migrations` is "only available to selected partner OAuth apps"; a 403 falls
  back to reading `supabase_migrations.schema_migrations` through `POST .../database/query`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.errors import FatalError
from runner.http import ProviderHttp

log = logging.getLogger("forge.runner.supabase")

PROVIDER = "supabase"
HISTORY_TABLE = "supabase_migrations.schema_migrations"


@dataclass(frozen=True)
class Project:
    ref: str
    name: str
    organization_slug: str
    region: str
    status: str
    created_at: str

    @property
    def created_sort_key(self) -> tuple[float, str]:
        """Oldest first; an unparseable timestamp sorts last (then by ref, for stability)."""
        try:
            stamp = datetime.fromisoformat(self.created_at).timestamp()
        except ValueError:
            stamp = float("inf")
        return stamp, self.ref


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    status: str  # COMING_UP | ACTIVE_HEALTHY | UNHEALTHY
    error: str | None = None


@dataclass(frozen=True)
class ApiKeys:
    """The two keys the app needs; secrets, so kept out of `repr`."""

    anon: str = field(repr=False)
    service_role: str = field(repr=False)


@dataclass(frozen=True)
class PoolerConfig:
    db_user: str
    db_host: str
    db_port: int
    db_name: str
    query: str = ""  # the connection string's query (e.g. `sslmode=disable`), without `?`


@dataclass(frozen=True)
class Migration:
    version: str
    name: str = ""


def _unexpected(what: str, body: Any) -> FatalError:
    return FatalError(PROVIDER, None, f"unexpected answer to {what}: {str(body)[:200]}")


def _text(item: dict[str, Any], key: str, what: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise _unexpected(what, item)
    return value


def _project(item: Any, what: str) -> Project:
    if not isinstance(item, dict):
        raise _unexpected(what, item)
    return Project(
        ref=_text(item, "ref", what),
        name=str(item.get("name", "")),
        organization_slug=str(item.get("organization_slug") or item.get("organization_id") or ""),
        region=str(item.get("region", "")),
        status=str(item.get("status", "UNKNOWN")),
        created_at=str(item.get("created_at", "")),
    )


def _pick_keys(items: list[Any]) -> ApiKeys | None:
    """Legacy `anon` / `service_role` JWTs, else the publishable / secret keys; None if absent."""
    legacy: dict[str, str] = {}
    modern: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("api_key"), str):
            continue
        key, kind, name = item["api_key"], item.get("type"), item.get("name")
        if "•" in key:  # masked: not revealed
            continue
        if kind in ("legacy", None) and name in ("anon", "service_role"):
            legacy[str(name)] = key
        elif kind in ("publishable", "secret"):
            modern.setdefault(str(kind), key)
    if "anon" in legacy and "service_role" in legacy:
        return ApiKeys(anon=legacy["anon"], service_role=legacy["service_role"])
    if "publishable" in modern and "secret" in modern:
        return ApiKeys(anon=modern["publishable"], service_role=modern["secret"])
    return None


class SupabaseClient:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    # -- projects ------------------------------------------------------------------------------
    def list_projects(self) -> list[Project]:
        body = self.http.json("GET", "/v1/projects")
        if not isinstance(body, list):
            raise _unexpected("GET /v1/projects", body)
        return [_project(item, "GET /v1/projects") for item in body]

    def get_project(self, ref: str) -> Project | None:
        response = self.http.request("GET", f"/v1/projects/{ref}", accept=(404,))
        if response.status_code == 404:
            return None
        return _project(response.json(), f"GET /v1/projects/{ref}")

    def create_project(
        self, name: str, organization_slug: str, region: str, db_pass: str
    ) -> Project:
        """One POST, never repeated here: an unknown outcome raises `AmbiguousError`."""
        body = {
            "name": name,
            "organization_slug": organization_slug,
            "db_pass": db_pass,
            "region_selection": {"type": "specific", "code": region},
        }
        response = self.http.request("POST", "/v1/projects", json=body, idempotent=False)
        return _project(response.json(), "POST /v1/projects")

    def delete_project(self, ref: str) -> bool:
        """True when deleted, False when there was no such project."""
        response = self.http.request("DELETE", f"/v1/projects/{ref}", accept=(404,))
        return response.status_code != 404

    def health(self, ref: str, services: tuple[str, ...] = ("db", "rest")) -> list[ServiceHealth]:
        body = self.http.json(
            "GET", f"/v1/projects/{ref}/health", params={"services": list(services)}
        )
        if not isinstance(body, list):
            raise _unexpected("GET health", body)
        return [
            ServiceHealth(
                name=str(item.get("name", "")),
                status=str(item.get("status", "UNHEALTHY")),
                error=item.get("error") if isinstance(item.get("error"), str) else None,
            )
            for item in body
            if isinstance(item, dict)
        ]

    # -- keys and connection -------------------------------------------------------------------
    def api_keys(self, ref: str) -> ApiKeys | None:
        """The anon and service-role keys, or None while the project has none yet."""
        body = self.http.json("GET", f"/v1/projects/{ref}/api-keys", params={"reveal": "true"})
        if not isinstance(body, list):
            raise _unexpected("GET api-keys", type(body).__name__)  # never echo key material
        return _pick_keys(body)

    def pooler_config(self, ref: str) -> PoolerConfig:
        """The PRIMARY database's connection parameters (the password is never in them)."""
        what = f"GET /v1/projects/{ref}/config/database/pooler"
        body = self.http.json("GET", f"/v1/projects/{ref}/config/database/pooler")
        items = body if isinstance(body, list) else [body]
        primary = [i for i in items if isinstance(i, dict) and i.get("database_type") == "PRIMARY"]
        # Session mode (a long-lived connection per client) suits DDL best when both are listed.
        primary.sort(key=lambda i: i.get("pool_mode") != "session")
        if not primary:
            raise _unexpected(what, body)
        item = primary[0]
        try:
            port = int(item["db_port"])
        except (KeyError, TypeError, ValueError):
            raise _unexpected(what, body) from None
        connection = item.get("connection_string") or item.get("connectionString") or ""
        # Not urlsplit: the `[YOUR-PASSWORD]` placeholder reads as a malformed IPv6 host.
        query = (
            connection.partition("?")[2].partition("#")[0] if isinstance(connection, str) else ""
        )
        return PoolerConfig(
            db_user=_text(item, "db_user", what),
            db_host=_text(item, "db_host", what),
            db_port=port,
            db_name=_text(item, "db_name", what),
            query=query,
        )

    # -- migrations ----------------------------------------------------------------------------
    def list_migrations(self, ref: str) -> list[Migration]:
        """The remote migration history, oldest first (empty before the first push)."""
        path = f"/v1/projects/{ref}/database/migrations"
        response = self.http.request("GET", path, accept=(403,))
        if response.status_code == 403:
            log.info("migration history endpoint refused (partner-only); reading the table")
            return self._history_by_query(ref)
        body = response.json()
        if not isinstance(body, list):
            raise _unexpected(f"GET {path}", body)
        found = [
            Migration(str(i["version"]), str(i.get("name") or ""))
            for i in body
            if isinstance(i, dict) and i.get("version")
        ]
        return sorted(found, key=lambda m: m.version)

    def query(self, ref: str, sql: str, read_only: bool = True) -> list[dict[str, Any]]:
        """Rows of `sql` run by the Management API (read-only by default, so safe to retry)."""
        body = self.http.json(
            "POST",
            f"/v1/projects/{ref}/database/query",
            json={"query": sql, "read_only": read_only},
            idempotent=read_only,
        )
        if not isinstance(body, list):
            raise _unexpected("POST database/query", body)
        return [row for row in body if isinstance(row, dict)]

    def _history_by_query(self, ref: str) -> list[Migration]:
        present = self.query(ref, f"select to_regclass('{HISTORY_TABLE}') is not null as present")
        if not present or not present[0].get("present"):
            return []
        rows = self.query(ref, f"select version from {HISTORY_TABLE} order by version")
        return [Migration(str(r["version"])) for r in rows if r.get("version")]
