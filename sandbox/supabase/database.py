"""Each project's real PostgreSQL database: provisioning, SQL on the project's behalf, and the
migration history the CLI keeps in `supabase_migrations.schema_migrations`.

Blocking (psycopg); handlers call these through `run_in_threadpool`. SQL sent through the API
runs as the project's own role (`SET LOCAL ROLE`), so what it creates belongs to the project
and a later `supabase db push` with the project's credentials can alter it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sandbox.postgres import PostgresServer
from sandbox.supabase.platform import ensure_platform

HISTORY = "supabase_migrations.schema_migrations"

# What the CLI runs before a push (CLI-TRAFFIC.md §1.7), plus the platform's extra columns
# that `GET .../database/migrations/{version}` reports.
_ENSURE_HISTORY = (
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    f"CREATE TABLE IF NOT EXISTS {HISTORY} (version text NOT NULL PRIMARY KEY)",
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS statements text[]",
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS name text",
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS created_by text",
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS idempotency_key text",
    f"ALTER TABLE {HISTORY} ADD COLUMN IF NOT EXISTS rollback text[]",
)


class QueryError(Exception):
    """SQL the caller sent failed; the message is PostgreSQL's, prefixed as the API does."""


@dataclass(frozen=True)
class ProjectDb:
    role: str
    dbname: str


def role_for(ref: str) -> str:
    return f"postgres.{ref}"


def provision(pg: PostgresServer, ref: str, password: str, expose: bool) -> dict[str, str]:
    """Create the project's login role and database (`expose`: new public tables granted to the
    API roles, the 2025 defaults); report what `database` blocks show."""
    role = role_for(ref)
    pg.create_database(role, password, ref)
    ensure_platform(pg, role, ref, expose)
    with pg.admin() as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    number = int(str(row[0])) if row else 150000
    major, minor = number // 10000, number % 10000
    return {
        "role": role,
        "dbname": ref,
        "version": f"{major}.{minor}.1.000",
        "engine": str(major),
    }


def drop(pg: PostgresServer, db: ProjectDb) -> None:
    pg.drop_database(db.role, db.dbname)


def set_login(pg: PostgresServer, db: ProjectDb, allowed: bool) -> None:
    """Pause (no logins, sessions ended) or restore the project's role."""
    with pg.admin() as conn:
        verb = "LOGIN" if allowed else "NOLOGIN"
        conn.execute(sql.SQL("ALTER ROLE {} " + verb).format(sql.Identifier(db.role)))
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db.dbname,),
            )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, decimal.Decimal | uuid.UUID | dt.timedelta):
        return str(value)
    return str(value)


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict) else value


def _fail(e: psycopg.Error) -> QueryError:
    diag = getattr(e, "diag", None)
    code = getattr(diag, "sqlstate", None) or ""
    primary = getattr(diag, "message_primary", None) or str(e).strip()
    return QueryError(f"Failed to run sql query: ERROR:  {code}: {primary}")


def run_query(
    pg: PostgresServer,
    db: ProjectDb,
    query: str,
    parameters: list[Any] | None,
    read_only: bool,
) -> list[dict[str, Any]]:
    """Run `query` (several statements allowed without parameters; `$1` placeholders with
    them) in one transaction; the rows of the last statement that returns rows."""
    with pg.admin(db.dbname) as conn:
        try:
            with conn.transaction():
                if read_only:
                    conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(db.role)))
                if parameters:
                    with psycopg.RawCursor(conn, row_factory=dict_row) as raw:
                        raw.execute(query, [_adapt(p) for p in parameters])
                        return _last_rows(raw)
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(query.encode())
                    return _last_rows(cur)
        except psycopg.Error as e:
            raise _fail(e) from e


def _last_rows(cur: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        if cur.description is not None:
            rows = [{k: _jsonable(v) for k, v in row.items()} for row in cur.fetchall()]
        if not cur.nextset():
            return rows


def _history_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (HISTORY,)).fetchone()
    return bool(row and row[0])


def history(pg: PostgresServer, db: ProjectDb) -> list[dict[str, Any]]:
    """Applied migrations, oldest first: `[{version, name}]` (empty before the first one)."""
    with pg.admin(db.dbname) as conn:
        if not _history_exists(conn):
            return []
        cur = conn.cursor(row_factory=dict_row)
        rows = cur.execute(f"SELECT version, name FROM {HISTORY} ORDER BY version").fetchall()
    return [{"version": r["version"], "name": r["name"] or ""} for r in rows]


def migration(pg: PostgresServer, db: ProjectDb, version: str) -> dict[str, Any] | None:
    with pg.admin(db.dbname) as conn:
        if not _history_exists(conn):
            return None
        cur = conn.cursor(row_factory=dict_row)
        columns = cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (HISTORY,),
        ).fetchall()
        wanted = ["version", "name", "statements", "rollback", "created_by", "idempotency_key"]
        present = [c for c in wanted if c in {row["attname"] for row in columns}]
        query = sql.SQL("SELECT {} FROM {} WHERE version = %s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in present),
            sql.SQL(HISTORY),
        )
        row = cur.execute(query, (version,)).fetchone()
    if row is None:
        return None
    return {k: v for k, v in row.items() if v is not None}


def _next_version(conn: psycopg.Connection[Any]) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    row = conn.execute(f"SELECT max(version) FROM {HISTORY} WHERE version ~ '^[0-9]+$'").fetchone()
    latest = row[0] if row else None
    if latest and int(latest) >= int(stamp):
        return str(int(latest) + 1)
    return stamp


def record_migration(
    pg: PostgresServer,
    db: ProjectDb,
    query: str,
    name: str,
    rollback: str | None,
    idempotency_key: str | None,
    apply: bool,
) -> str:
    """Apply `query` (when `apply`) and write its history row, atomically; the version.

    With an idempotency key already in the history, an apply is not repeated and an upsert
    updates that row instead of adding one."""
    with pg.admin(db.dbname) as conn:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(db.role)))
                for statement in _ENSURE_HISTORY:
                    conn.execute(statement)
                existing = None
                if idempotency_key:
                    found = conn.execute(
                        f"SELECT version FROM {HISTORY} WHERE idempotency_key = %s",
                        (idempotency_key,),
                    ).fetchone()
                    existing = str(found[0]) if found else None
                if existing and apply:
                    return existing
                if apply:
                    conn.execute(query.encode())
                values = ([query], name or None, [rollback] if rollback else None)
                if existing:
                    conn.execute(
                        f"UPDATE {HISTORY} SET statements = %s, name = %s, rollback = %s "
                        "WHERE version = %s",
                        (*values, existing),
                    )
                    return existing
                version = _next_version(conn)
                conn.execute(
                    f"INSERT INTO {HISTORY} "
                    "(version, statements, name, rollback, created_by, idempotency_key) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (version, *values, "management-api", idempotency_key),
                )
                return version
        except psycopg.Error as e:
            raise _fail(e) from e
