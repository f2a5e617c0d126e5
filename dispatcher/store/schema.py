"""What both store backends share: the migrations shipped in the package and the pure rules for
applying them, the row <-> dataclass mapping, and the checks every write goes through.

Migrations are `migrations/<dialect>/NNNN_name.sql` (dialect `sqlite` or `postgres`), applied in
version order, each recorded in `schema_migrations` with the SHA-256 of its text: an applied
migration whose file changed since, or a database migrated by a newer dispatcher, is refused
with an error naming the version, never silently patched over.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from dispatcher.core.errors import Conflict, StoreError
from dispatcher.model import Deployment, Status, StoredEvent
from runner.events import DeploymentId

Clock = Callable[[], datetime]

DIALECTS = ("sqlite", "postgres")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# The columns of `deployments` a caller may set through Store.update().
UPDATABLE = frozenset(
    {
        "status",
        "step",
        "app_url",
        "repo_url",
        "database_url",
        "health",
        "error",
        "exit_code",
        "started_at",
        "finished_at",
        "cancel_requested",
    }
)
URL_FIELDS = frozenset({"app_url", "repo_url", "database_url"})
TIMESTAMP_FIELDS = frozenset({"started_at", "finished_at"})


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, derived from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


MIGRATE_LOCK = _advisory_key("forge-dispatcher:migrate")
CLAIM_LOCK = _advisory_key("forge-dispatcher:claim")


EXPOSURE_POLICIES = (
    "warn",
    "fail",
)  # a deploy's FORGE_EXPOSURE_POLICY (the runner's default: warn)


class MigrationError(StoreError):
    """The database's schema history does not fit the migrations this dispatcher ships."""


# -- migrations ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped for `dialect`, in version order."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}: expected one of {DIALECTS}")
    folder = resources.files("dispatcher.store").joinpath("migrations", dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.match(entry.name)
        if not match:
            raise MigrationError(
                f"migration file {dialect}/{entry.name} is not named NNNN_name.sql"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    if not found:
        raise MigrationError(f"no {dialect} migrations shipped in dispatcher/store/migrations")
    return [found[v] for v in sorted(found)]


def pending(shipped: Iterable[Migration], applied: Mapping[int, str]) -> list[Migration]:
    """The shipped migrations not yet in `applied` ({version: checksum}), in order."""
    by_version = {m.version: m for m in shipped}
    newer = sorted(v for v in applied if v not in by_version)
    if newer:
        raise MigrationError(
            f"the database has schema version(s) {newer} that this dispatcher does not ship "
            f"(it knows up to {max(by_version, default=0)}): run a newer forge-dispatcher"
        )
    for version, checksum in applied.items():
        if by_version[version].checksum != checksum:
            raise MigrationError(
                f"migration {version} ({by_version[version].name}) changed after it was applied: "
                "ship schema changes as a new migration file"
            )
    return [m for v, m in sorted(by_version.items()) if v not in applied]


def split_sqlite_script(script: str) -> list[str]:
    """A migration file as single statements (sqlite3 executes one at a time; executescript
    would COMMIT the migration's transaction). Statements end at a line ending in `;`."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise MigrationError(f"unterminated SQL statement in migration: {leftover[0][:80]!r}")
    return statements


# -- values -------------------------------------------------------------------------------------
def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the format of every timestamp the store returns."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment!r} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: str | datetime, field: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{field} must be an ISO 8601 UTC time, got {value!r}") from e
    if moment.tzinfo is None:
        raise ValueError(f"{field} must carry a time zone (UTC, ending in Z), got {value!r}")
    return moment.astimezone(UTC)


def new_deployment_id() -> DeploymentId:
    return DeploymentId("dep_" + secrets.token_hex(12))


def request_hash(
    project_id: str,
    project_name: str,
    build_dir: str,
    action: str,
    owner: str | None,
    exposure_policy: str | None = None,
) -> str:
    """What an Idempotency-Key is bound to. The owner is part of it: another user reusing a
    key gets Conflict, never someone else's deployment. An exposure policy counts only when
    set, so a key used before the field existed still finds its deployment."""
    body: list[str | None] = [project_id, project_name, build_dir, action, owner]
    if exposure_policy is not None:
        body.append(exposure_policy)
    return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode()).hexdigest()


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, fit for an error message."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparseable URL>"


_UNSTORABLE = re.compile("[\ud800-\udfff]")
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one, not one per event
_UNSTORABLE_PG = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any, *, no_nul: bool) -> Any:
    """`value` (strings, nested in dicts and lists) with what a driver cannot store replaced
    by U+FFFD: lone surrogates (not UTF-8) always, U+0000 too for PostgreSQL (`no_nul`)."""
    if isinstance(value, str):
        if value.isascii() and not (no_nul and "\x00" in value):
            return value  # the common case, without a regex pass
        return (_UNSTORABLE_PG if no_nul else _UNSTORABLE).sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(k, no_nul=no_nul): storable(v, no_nul=no_nul) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v, no_nul=no_nul) for v in value]
    return value


def payload_json(payload: dict[str, Any], *, no_nul: bool) -> tuple[dict[str, Any], str]:
    """(the payload as it will be stored, its JSON text): unchanged on the fast path (one
    dumps), else with `storable` strings."""
    text = _JSON.encode(payload)
    if (not text.isascii() and _UNSTORABLE.search(text)) or (no_nul and "\\u0000" in text):
        payload = storable(payload, no_nul=no_nul)
        text = _JSON.encode(payload)
    return payload, text


def check_update(fields: Mapping[str, Any], *, no_nul: bool) -> dict[str, Any]:
    """Validate Store.update() fields; returns them normalised (Status values as str,
    timestamps as aware UTC datetimes, health as a dict, strings `storable`). Raises naming the
    bad field."""
    unknown = sorted(set(fields) - UPDATABLE)
    if unknown:
        raise TypeError(f"cannot update deployment field(s) {unknown}: allowed {sorted(UPDATABLE)}")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "status":
            try:
                out[name] = Status(value).value
            except ValueError as e:
                raise ValueError(f"status must be one of {[s.value for s in Status]}") from e
        elif name in TIMESTAMP_FIELDS:
            out[name] = None if value is None else parse_ts(value, name)
        elif name in URL_FIELDS:
            out[name] = storable(_url_without_secret(name, value), no_nul=no_nul)
        elif name == "health":
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"health must be a JSON object or None, got {type(value)}")
            out[name] = storable(value, no_nul=no_nul)
        elif name == "exit_code":
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"exit_code must be an integer or None, got {value!r}")
            out[name] = value
        elif name == "cancel_requested":
            if not isinstance(value, bool):
                raise ValueError(f"cancel_requested must be a bool, got {value!r}")
            out[name] = value
        else:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or None, got {type(value)}")
            out[name] = storable(value, no_nul=no_nul)
    return out


def _url_without_secret(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, got {type(value)}")
    try:
        password = urlsplit(value).password
    except ValueError as e:
        raise ValueError(f"{name} is not a URL") from e
    if password:
        raise ValueError(
            f"{name} carries a password ({redact_url(value)}): deployments hold no secret"
        )
    return value


# -- rows ---------------------------------------------------------------------------------------
class Row(Protocol):
    """A result row by column name: sqlite3.Row or psycopg's dict_row."""

    def __getitem__(self, key: str, /) -> Any: ...


def _ts(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def deployment_from_row(row: Row) -> Deployment:
    """A `deployments` row (SQLite or PostgreSQL types) as the dataclass."""
    created_at, updated_at = _ts(row["created_at"]), _ts(row["updated_at"])
    assert created_at is not None and updated_at is not None  # NOT NULL columns
    return Deployment(
        id=DeploymentId(row["id"]),
        project_id=row["project_id"],
        project_name=row["project_name"],
        build_dir=row["build_dir"],
        status=Status(row["status"]),
        attempt=int(row["attempt"]),
        created_at=created_at,
        updated_at=updated_at,
        idempotency_key=row["idempotency_key"],
        step=row["step"],
        app_url=row["app_url"],
        repo_url=row["repo_url"],
        database_url=row["database_url"],
        health=_json(row["health"]),
        error=row["error"],
        exit_code=row["exit_code"],
        started_at=_ts(row["started_at"]),
        finished_at=_ts(row["finished_at"]),
        cancel_requested=bool(row["cancel_requested"]),
        action=row["action"],
        claimed_by=row["claimed_by"],
        exposure_policy=row["exposure_policy"],
    )


def event_from_row(row: Row) -> StoredEvent:
    return StoredEvent(
        deployment_id=row["deployment_id"],
        id=int(row["id"]),
        attempt=int(row["attempt"]),
        type=row["type"],
        ts=row["ts"],
        payload=_json(row["payload"]),
        runner_seq=row["runner_seq"],
    )


def submission(
    project_id: str,
    project_name: str,
    build_dir: str,
    idempotency_key: str | None,
    action: str,
    owner: str | None,
    exposure_policy: str | None = None,
) -> str | None:
    """Check submit()'s strings (text both backends store: no U+0000, no lone surrogate; all but
    the key and the owner non-empty; an exposure policy one of `EXPOSURE_POLICIES`); returns
    the request hash to keep with the key, if any."""
    values = {
        "project_id": project_id,
        "project_name": project_name,
        "build_dir": build_dir,
        "action": action,
        "idempotency_key": idempotency_key,
        "owner": owner,
    }
    for name, value in values.items():
        if value is None and name in ("idempotency_key", "owner"):
            continue
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r:.80}")
        if _UNSTORABLE_PG.search(value):
            raise ValueError(f"{name} contains a NUL character or an unpaired surrogate")
    if exposure_policy is not None and exposure_policy not in EXPOSURE_POLICIES:
        raise ValueError(f"exposure_policy must be one of {EXPOSURE_POLICIES} or None")
    if idempotency_key is None:
        return None
    return request_hash(project_id, project_name, build_dir, action, owner, exposure_policy)


def key_conflict(idempotency_key: str | None, deployment_id: str) -> Conflict:
    return Conflict(
        f"Idempotency-Key {idempotency_key!r} was used for deployment {deployment_id} with a "
        "different request"
    )


def check_limit(limit: int) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
