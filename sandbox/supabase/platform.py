"""What a real Supabase database has before the first migration, so the project's own SQL and
its REST API behave as they do there: the API roles, the `auth` helpers RLS policies call,
the grants PostgREST relies on, and the `supabase_realtime` publication.

- `anon`, `authenticated` (NOLOGIN) and `service_role` (NOLOGIN, BYPASSRLS) are cluster-wide
  roles, made once; PostgREST switches to them with `SET LOCAL ROLE`.
- `auth.uid()`, `auth.role()`, `auth.jwt()` read `request.jwt.claims` as Supabase's do.
- The project's role grants every new table, sequence and function in `public` to the three
  API roles by default (as the platform's `postgres` role does); RLS then decides what a row
  shows. The publication belongs to the project's role, so a migration may add its tables.

Idempotent: run at provisioning and before a project's REST API first serves a request (a
project made by an older sandbox gets it then).
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

_done: set[str] = set()
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


def ensure_platform(pg: PostgresServer, owner: str, dbname: str) -> None:
    """Roles, `auth` helpers, grants and publication in `dbname` (owned by `owner`)."""
    with _lock:
        if dbname in _done:
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
        for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT ALL ON "
                    + kind
                    + " TO {}"
                ).format(project, roles)
            )
        found = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime'")
        if not found.fetchone():
            conn.execute("CREATE PUBLICATION supabase_realtime")
        conn.execute(sql.SQL("ALTER PUBLICATION supabase_realtime OWNER TO {}").format(project))
    with _lock:
        _done.add(dbname)
