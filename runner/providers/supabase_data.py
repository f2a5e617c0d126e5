"""What the Supabase Management API answers, as data: each answer becomes a frozen dataclass in
one place, checked against the field names of supabase-management.json. A malformed answer is a
provider fault (`FatalError` naming the call), never an internal error; key material is never
echoed into one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.errors import FatalError

PROVIDER = "supabase"


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
    db_schema: str | None = None  # `rest`'s info: the schemas the Data API exposes


@dataclass(frozen=True)
class ApiKey:
    """One `ApiKeyResponse`; `value` is None when the answer masked it (not revealed)."""

    id: str
    name: str
    type: str  # legacy | publishable | secret
    value: str | None = field(repr=False)


@dataclass(frozen=True)
class AuthUrls:
    """The auth service's `site_url` and `uri_allow_list` (comma-separated in the API)."""

    site_url: str
    allow_list: tuple[str, ...]


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


def unexpected(what: str, body: Any) -> FatalError:
    return FatalError(PROVIDER, None, f"unexpected answer to {what}: {str(body)[:200]}")


def _text(item: dict[str, Any], key: str, what: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise unexpected(what, item)
    return value


def project(item: Any, what: str) -> Project:
    if not isinstance(item, dict):
        raise unexpected(what, item)
    return Project(
        ref=_text(item, "ref", what),
        name=str(item.get("name", "")),
        organization_slug=str(item.get("organization_slug") or item.get("organization_id") or ""),
        region=str(item.get("region", "")),
        status=str(item.get("status", "UNKNOWN")),
        created_at=str(item.get("created_at", "")),
    )


def services(body: Any) -> list[ServiceHealth]:
    if not isinstance(body, list):
        raise unexpected("GET health", body)
    found = []
    for item in body:
        if not isinstance(item, dict):
            continue
        info = item.get("info") if isinstance(item.get("info"), dict) else {}
        schema = info.get("db_schema") if isinstance(info, dict) else None
        found.append(
            ServiceHealth(
                name=str(item.get("name", "")),
                status=str(item.get("status", "UNHEALTHY")),
                error=item.get("error") if isinstance(item.get("error"), str) else None,
                db_schema=schema if isinstance(schema, str) else None,
            )
        )
    return found


def api_key(item: Any) -> ApiKey | None:
    """An item of the key list, or None for one this runner cannot use (no name or type)."""
    if not isinstance(item, dict):
        return None
    name, kind, value = item.get("name"), item.get("type"), item.get("api_key")
    if not isinstance(name, str) or kind not in ("legacy", "publishable", "secret", None):
        return None
    if not isinstance(value, str) or not value or "•" in value:  # masked: not revealed
        value = None
    kind = kind or ("legacy" if name in ("anon", "service_role") else None)
    if kind is None:
        return None
    return ApiKey(id=str(item.get("id") or name), name=name, type=kind, value=value)


def auth_urls(body: Any, what: str) -> AuthUrls:
    if not isinstance(body, dict):
        raise unexpected(what, body)
    site, allow = body.get("site_url"), body.get("uri_allow_list")
    if not isinstance(site, str | None) or not isinstance(allow, str | None):
        raise unexpected(what, {"site_url": site, "uri_allow_list": allow})
    entries = tuple(e.strip() for e in (allow or "").split(",") if e.strip())
    return AuthUrls(site or "", entries)


def pooler_config(body: Any, what: str) -> PoolerConfig:
    items = body if isinstance(body, list) else [body]
    primary = [i for i in items if isinstance(i, dict) and i.get("database_type") == "PRIMARY"]
    # Session mode (a long-lived connection per client) suits DDL best when both are listed.
    primary.sort(key=lambda i: i.get("pool_mode") != "session")
    if not primary:
        raise unexpected(what, body)
    item = primary[0]
    try:
        port = int(item["db_port"])
    except (KeyError, TypeError, ValueError):
        raise unexpected(what, body) from None
    connection = item.get("connection_string") or item.get("connectionString") or ""
    # Not urlsplit: the `[YOUR-PASSWORD]` placeholder reads as a malformed IPv6 host.
    query = connection.partition("?")[2].partition("#")[0] if isinstance(connection, str) else ""
    return PoolerConfig(
        db_user=_text(item, "db_user", what),
        db_host=_text(item, "db_host", what),
        db_port=port,
        db_name=_text(item, "db_name", what),
        query=query,
    )
