"""The Supabase Management API client: projects (and their restore), health, API keys, the auth
service's URLs, pooler config, migrations and read-only SQL.

Takes a `ProviderHttp` (base URL, session, retries, the one status→error mapping) and returns
frozen dataclasses (`supabase_data`). Facts it relies on (../shared/specs/README.md, its last
section first, and supabase-management.json):
- `POST /v1/projects` takes `name`, `db_pass`, `organization_slug` (`organization_id` is
  deprecated; `SUPABASE_ORG_ID` holds the slug) and `region_selection` (plain `region` is
  deprecated); it answers 201 with `status: UNKNOWN` and no `database` block. Names need not be
  unique: the ref identifies a project.
- `GET /v1/projects` is one unpaged array of every project the token sees, in every org.
- `GET .../api-keys?reveal=true` answers `[]` until keys are minted (the sandbox) or 500 right
  after create (the real API): both mean "not yet". It lists the legacy JWT pair even when it is
  disabled; `GET .../api-keys/legacy` says whether it is (and "will be removed": 404 = none).
- A paused project reads `INACTIVE`; `POST .../restore` brings it back through `RESTORING`.
- `GET .../database/migrations` is "only available to selected partner OAuth apps"; a 403 falls
  back to reading `supabase_migrations.schema_migrations` with a read-only query.
- A scoped token's 403 lists `missing_permissions` (`runner.http` makes it `MissingPermissions`);
  every call here says what forge-deploy needs it for, so the error names the purpose too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import requests

from runner.errors import MissingPermissions
from runner.http import ProviderHttp
from runner.providers.supabase_data import (
    PROVIDER,
    ApiKey,
    AuthUrls,
    Migration,
    PoolerConfig,
    Project,
    ServiceHealth,
    api_key,
    auth_urls,
    pooler_config,
    project,
    services,
    unexpected,
)

log = logging.getLogger("forge.runner.supabase")

HISTORY_TABLE = "supabase_migrations.schema_migrations"

__all__ = [
    "PROVIDER",
    "ApiKey",
    "AuthUrls",
    "Migration",
    "PoolerConfig",
    "Project",
    "ServiceHealth",
    "SupabaseClient",
]


class SupabaseClient:
    def __init__(self, http: ProviderHttp) -> None:
        self.http = http

    def _request(
        self,
        purpose: str,
        method: str,
        path: str,
        *,
        accept: Collection[int] = (),
        idempotent: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One call (with the client's retries); a scoped token's refusal names `purpose`."""
        try:
            return self.http.request(method, path, accept=accept, idempotent=idempotent, **kwargs)
        except MissingPermissions as e:
            raise e.needed_to(purpose) from None

    # -- projects ------------------------------------------------------------------------------
    def list_projects(self) -> list[Project]:
        body = self._request("find the app's project", "GET", "/v1/projects").json()
        if not isinstance(body, list):
            raise unexpected("GET /v1/projects", body)
        return [project(item, "GET /v1/projects") for item in body]

    def get_project(self, ref: str) -> Project | None:
        response = self._request(
            "follow the project's status", "GET", f"/v1/projects/{ref}", accept=(404,)
        )
        if response.status_code == 404:
            return None
        return project(response.json(), f"GET /v1/projects/{ref}")

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
        response = self._request(
            "create the app's project", "POST", "/v1/projects", json=body, idempotent=False
        )
        return project(response.json(), "POST /v1/projects")

    def restore_project(self, ref: str) -> None:
        """Un-pause (one POST, not repeated here: the caller looks at the status first)."""
        self._request(
            "restore the paused project", "POST", f"/v1/projects/{ref}/restore", idempotent=False
        )

    def delete_project(self, ref: str) -> bool:
        """True when deleted, False when there was no such project."""
        response = self._request(
            "delete the app's project", "DELETE", f"/v1/projects/{ref}", accept=(404,)
        )
        return response.status_code != 404

    def health(self, ref: str, names: tuple[str, ...] = ("db", "rest")) -> list[ServiceHealth]:
        response = self._request(
            "see that the project is healthy",
            "GET",
            f"/v1/projects/{ref}/health",
            params={"services": list(names)},
        )
        return services(response.json())

    # -- keys ----------------------------------------------------------------------------------
    def api_keys(self, ref: str) -> list[ApiKey]:
        """Every key of the project, revealed (empty while the project has none yet)."""
        response = self._request(
            "read the project's API keys for the app",
            "GET",
            f"/v1/projects/{ref}/api-keys",
            params={"reveal": "true"},
        )
        body = response.json()
        if not isinstance(body, list):
            raise unexpected("GET api-keys", type(body).__name__)  # never echo key material
        return [key for item in body if (key := api_key(item)) is not None]

    def legacy_keys_enabled(self, ref: str) -> bool | None:
        """Whether the legacy JWT pair works; None when the endpoint is gone (no legacy keys)."""
        response = self._request(
            "check whether the legacy JWT keys are enabled",
            "GET",
            f"/v1/projects/{ref}/api-keys/legacy",
            accept=(404,),
        )
        if response.status_code == 404:
            return None
        body = response.json()
        if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
            raise unexpected("GET api-keys/legacy", body)
        return bool(body["enabled"])

    def create_api_key(self, ref: str, kind: str, name: str, description: str) -> ApiKey:
        """One POST (`reveal=true`: the new key's value comes back)."""
        response = self._request(
            f"create a {kind} API key for the app",
            "POST",
            f"/v1/projects/{ref}/api-keys",
            params={"reveal": "true"},
            json={"type": kind, "name": name, "description": description},
            idempotent=False,
        )
        created = api_key(response.json())
        if created is None or created.type != kind:
            raise unexpected("POST api-keys", "no usable key in the answer")
        return created

    # -- auth service --------------------------------------------------------------------------
    def auth_urls(self, ref: str) -> AuthUrls:
        response = self._request(
            "read the auth service's site URL", "GET", f"/v1/projects/{ref}/config/auth"
        )
        return auth_urls(response.json(), "GET config/auth")

    def set_auth_urls(self, ref: str, urls: AuthUrls) -> AuthUrls:
        response = self._request(
            "point the auth service's e-mails at the live app",
            "PATCH",
            f"/v1/projects/{ref}/config/auth",
            json={"site_url": urls.site_url, "uri_allow_list": ",".join(urls.allow_list)},
        )
        return auth_urls(response.json(), "PATCH config/auth")

    # -- connection, migrations, SQL -----------------------------------------------------------
    def pooler_config(self, ref: str) -> PoolerConfig:
        """The PRIMARY database's connection parameters (the password is never in them)."""
        path = f"/v1/projects/{ref}/config/database/pooler"
        body = self._request("connect to the database for migrations", "GET", path).json()
        return pooler_config(body, f"GET {path}")

    def list_migrations(self, ref: str) -> list[Migration]:
        """The remote migration history, oldest first (empty before the first push)."""
        path = f"/v1/projects/{ref}/database/migrations"
        response = self._request("read the migration history", "GET", path, accept=(403,))
        if response.status_code == 403:
            log.info("migration history endpoint refused (partner-only); reading the table")
            return self._history_by_query(ref)
        body = response.json()
        if not isinstance(body, list):
            raise unexpected(f"GET {path}", body)
        found = [
            Migration(str(i["version"]), str(i.get("name") or ""))
            for i in body
            if isinstance(i, dict) and i.get("version")
        ]
        return sorted(found, key=lambda m: m.version)

    def query(
        self, ref: str, sql: str, parameters: list[Any] | None = None, purpose: str = "read"
    ) -> list[dict[str, Any]]:
        """Rows of `sql` in a read-only transaction (`POST .../database/query/read-only`: safe
        to retry, and all a token with `database_read` may run)."""
        body: dict[str, Any] = {"query": sql}
        if parameters:
            body["parameters"] = parameters
        response = self._request(
            purpose, "POST", f"/v1/projects/{ref}/database/query/read-only", json=body
        )
        rows = response.json()
        if not isinstance(rows, list):
            raise unexpected("POST database/query/read-only", rows)
        return [row for row in rows if isinstance(row, dict)]

    def _history_by_query(self, ref: str) -> list[Migration]:
        purpose = "read the migration history"
        present = self.query(
            ref, f"select to_regclass('{HISTORY_TABLE}') is not null as present", purpose=purpose
        )
        if not present or not present[0].get("present"):
            return []
        rows = self.query(
            ref, f"select version from {HISTORY_TABLE} order by version", None, purpose
        )
        return [Migration(str(r["version"])) for r in rows if r.get("version")]
