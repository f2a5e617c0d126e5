"""What a real Supabase database has before the first migration, so the project's own SQL and
its REST API behave as they do there: the API roles, the `auth` helpers RLS policies call,
the grants PostgREST relies on, and the `supabase_realtime` publication.

- `anon`, `authenticated` (NOLOGIN) and `service_role` (NOLOGIN, BYPASSRLS) are cluster-wide
  roles, made once; PostgREST switches to them with `SET LOCAL ROLE`.
- `auth.uid()`, `auth.role()`, `auth.jwt()` read `request.jwt.claims` as Supabase's do.
- New tables, sequences and functions in `public` are **not** granted to the API roles: since
  2026-05-30 for new projects (and 2026-10-30 for every project) a table reaches the Data API
  only through a `GRANT` (changelog "New tables in the public schema will no longer be exposed
  to the Data API automatically"). With `expose` (the 2025 defaults) the project's role grants
  them to the three API roles by default, as the platform's `postgres` role did; RLS then
  decides what a row shows. Switching changes only the defaults: tables that exist keep their
  grants, as on the platform. The publication belongs to the project's role, so a migration
  may add its tables.

Idempotent: run at provisioning, when a project's defaults change, and before a project's REST
API first serves a request (a project made by an older sandbox gets it then).
"""

from __future__ import annotations

import contextlib
import threading

import psycopg
from psycopg import sql

from sandbox.postgres import PostgresServer

API_ROLES = ("anon", "authenticated", "service_role")

_AUTH_FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
         SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb,
                         '{}'::jsonb) $$""",
    """CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
         SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                                auth.jwt() ->> 'sub'), '')::uuid $$""",
    """CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
         SELECT nullif(coalesce(current_setting('request.jwt.claim.role', true),
                                auth.jwt() ->> 'role'), '')::text $$""",
)

_done: set[tuple[str, bool]] = set()
_lock = threading.Lock()


def ensure_roles(pg: PostgresServer) -> None:
    with pg.admin() as conn:
        for role in API_ROLES:
            extra = " BYPASSRLS" if role == "service_role" else ""
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if exists.fetchone():
                continue
            # Another provisioning may make it between the look and the create.
            with contextlib.suppress(psycopg.errors.DuplicateObject):
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN" + extra).format(sql.Identifier(role)))


def ensure_platform(pg: PostgresServer, owner: str, dbname: str, expose: bool) -> None:
    """Roles, `auth` helpers, grants, default privileges and publication in `dbname` (owned by
    `owner`); `expose`: new `public` tables are granted to the API roles by default."""
    with _lock:
        if (dbname, expose) in _done:
            return
    ensure_roles(pg)
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in API_ROLES)
    everyone = sql.SQL(", ").join(sql.Identifier(r) for r in (*API_ROLES, owner))
    project = sql.Identifier(owner)
    with pg.admin(dbname) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('forge-sandbox:platform'))")
        conn.execute("CREATE SCHEMA IF NOT EXISTS auth")
        for statement in _AUTH_FUNCTIONS:
            conn.execute(statement)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA auth TO {}").format(everyone))
        conn.execute(
            sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO {}").format(everyone)
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(roles))
        change = "GRANT ALL ON {kind} TO {roles}" if expose else "REVOKE ALL ON {kind} FROM {roles}"
        statement = "ALTER DEFAULT PRIVILEGES FOR ROLE {project} IN SCHEMA public " + change
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            conn.execute(
                sql.SQL(statement).format(project=project, kind=sql.SQL(kind), roles=roles)
            )
        found = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime'")
        if not found.fetchone():
            conn.execute("CREATE PUBLICATION supabase_realtime")
        conn.execute(sql.SQL("ALTER PUBLICATION supabase_realtime OWNER TO {}").format(project))
    with _lock:
        _done.discard((dbname, not expose))
        _done.add((dbname, expose))
