"""Who receives a change, and what they receive, decided as Supabase's Realtime decides it
(its `realtime.apply_rls`):

- only tables in the `supabase_realtime` publication, only the actions it publishes;
- a subscriber's role must hold SELECT on the table;
- an INSERT or UPDATE reaches a binding whose filter the new record passes, and only when the
  subscriber's role and JWT claims may SELECT that version of the row under RLS: the table's
  SELECT policies for the role, evaluated on the committed record inside `SET LOCAL ROLE` with
  `request.jwt.claims`, as PostgREST runs (Realtime looks the row up by its key instead, which
  misses a row changed again before the check; a role with BYPASSRLS or a table without RLS
  sees every row);
- a DELETE passes filters and RLS (Realtime cannot check a row that is gone) and, on a table
  with RLS, carries only the old row's primary key.

The record is the row as PostgreSQL renders it to JSON (`to_jsonb` of the decoded values), so
jsonb is JSON, arrays are arrays and times are ISO 8601; `columns` names each column's type as
`pg_type.typname` (`int4`, `jsonb`, `_text`), which the clients' transformers read.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from sandbox.supabase.api_auth import Caller
from sandbox.supabase.rest import set_claims

if TYPE_CHECKING:
    from sandbox.supabase.realtime_feed import Change, Listener

log = logging.getLogger("forge-sandbox.realtime")
ACTIONS = ("INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class Published:
    tables: frozenset[tuple[str, str]]
    actions: frozenset[str]


def published(conn: psycopg.Connection[Any]) -> Published:
    flags = conn.execute(
        "SELECT pubinsert, pubupdate, pubdelete FROM pg_publication "
        "WHERE pubname = 'supabase_realtime'"
    ).fetchone()
    if flags is None:
        return Published(frozenset(), frozenset())
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables "
        "WHERE pubname = 'supabase_realtime'"
    ).fetchall()
    actions = frozenset(a for a, on in zip(ACTIONS, flags, strict=True) if on)
    return Published(frozenset((str(s), str(t)) for s, t in rows), actions)


@dataclass(frozen=True)
class Table:
    ident: sql.Composable  # schema.table, quoted
    name: str
    columns: list[dict[str, str]]  # [{name, type}] in column order
    primary_key: list[str]
    rls: bool


class Tables:
    """What one batch of changes needs to know about tables and roles, each read once."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._tables: dict[tuple[str, str], Table] = {}
        self._grants: dict[tuple[str, str, str], bool] = {}
        self._conditions: dict[tuple[str, str], sql.Composable] = {}

    def table(self, schema: str, name: str) -> Table:
        key = (schema, name)
        if key not in self._tables:
            ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            regclass = ident.as_string(self.conn)
            columns = self.conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t "
                "ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum",
                (regclass,),
            ).fetchall()
            key_columns = self.conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                (regclass,),
            ).fetchall()
            rls = self.conn.execute(
                "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (regclass,)
            ).fetchone()
            self._tables[key] = Table(
                ident,
                name,
                [{"name": str(n), "type": str(t)} for n, t in columns],
                [str(r[0]) for r in key_columns],
                bool(rls and rls[0]),
            )
        return self._tables[key]

    def _json(self, table: Table, values: dict[str, Any]) -> dict[str, Any]:
        """Decoded values as the row's JSON (`to_jsonb`), only the columns decoded."""
        types = {c["name"]: c["type"] for c in table.columns}
        prepared = {}
        for name, value in values.items():
            if types.get(name) in ("json", "jsonb") and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            prepared[name] = value
        found = self.conn.execute(
            sql.SQL("SELECT to_jsonb(_r) FROM json_populate_record(NULL::{}, %s::json) _r").format(
                table.ident
            ),
            (json.dumps(prepared),),
        ).fetchone()
        rendered: dict[str, Any] = found[0] if found else {}
        return {k: v for k, v in rendered.items() if k in values}

    def payload(self, change: Change) -> dict[str, Any]:
        """The `data` of the `postgres_changes` message."""
        table = self.table(change.schema, change.table)
        data: dict[str, Any] = {
            "schema": change.schema,
            "table": change.table,
            "commit_timestamp": change.commit_timestamp,
            "type": change.kind,
            "columns": table.columns,
            "errors": None,
        }
        if change.new is not None:
            data["record"] = self._json(table, change.new)
        if change.kind != "INSERT":
            old = change.old or {}
            if not old and change.new is not None:  # the key did not change
                old = {k: change.new[k] for k in table.primary_key if k in change.new}
            if table.rls:
                old = {k: v for k, v in old.items() if k in table.primary_key}
            data["old_record"] = self._json(table, old)
        return data

    def deliverable(self, change: Change, data: dict[str, Any], listener: Listener) -> list[int]:
        """The ids of the listener's bindings this change reaches (empty: none)."""
        wanted = [b for b in listener.bindings if b.wants(change.schema, change.table, change.kind)]
        if not wanted:
            return []
        table = self.table(change.schema, change.table)
        try:
            if not self._may_select(table, listener.role):
                return []
            if change.kind == "DELETE":
                return [b.id for b in wanted]
            passed = [b.id for b in wanted if self._passes(table, data["record"], b)]
            if passed and self._visible(table, data["record"], listener):
                return passed
        except psycopg.Error as e:
            log.warning("realtime: a change of %s was not delivered: %s", change.table, e)
        return []

    def _may_select(self, table: Table, role: str) -> bool:
        key = (table.ident.as_string(self.conn), role, "SELECT")
        if key not in self._grants:
            found = self.conn.execute(
                "SELECT has_table_privilege(%s, %s::regclass, 'SELECT')", (role, key[0])
            ).fetchone()
            self._grants[key] = bool(found and found[0])
        return self._grants[key]

    def _passes(self, table: Table, record: dict[str, Any], binding: Any) -> bool:
        query = binding.condition()
        if query is None:
            return True
        found = self.conn.execute(
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM json_populate_record(NULL::{}, %s::json) _r WHERE {})"
            ).format(table.ident, query.where),
            (json.dumps(record), *query.params),
        ).fetchone()
        return bool(found and found[0])

    def _policies(self, table: Table, role: str) -> sql.Composable:
        """The row condition RLS applies for `role` reading `table`: its permissive SELECT
        policies OR'd, its restrictive ones AND'd (no permissive policy: no row)."""
        key = (table.ident.as_string(self.conn), role)
        if key not in self._conditions:
            rows = self.conn.execute(
                "SELECT polpermissive, pg_get_expr(polqual, polrelid) FROM pg_policy "
                "WHERE polrelid = %s::regclass AND polcmd IN ('r', '*') AND (polroles = '{0}' "
                "OR EXISTS (SELECT 1 FROM unnest(polroles) r WHERE pg_has_role(%s, r, 'MEMBER')))",
                key,
            ).fetchall()
            # The database's own rendering of each policy (`pg_get_expr`), never request text.
            permissive = [f"({q or 'true'})" for p, q in rows if p]
            restrictive = [f"({q or 'true'})" for p, q in rows if not p]
            text = " AND ".join(["(" + " OR ".join(permissive) + ")", *restrictive])
            self._conditions[key] = sql.SQL(text) if permissive else sql.SQL("false")
        return self._conditions[key]

    def _visible(self, table: Table, record: dict[str, Any], listener: Listener) -> bool:
        """Whether the role and claims may SELECT this version of the row under RLS: the
        table's policies evaluated on the record as it was committed (the row may have
        changed or gone since), inside `SET LOCAL ROLE` with `request.jwt.claims`."""
        if listener.role == "service_role" or not table.rls:
            return True
        statement = sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM json_populate_record(NULL::{t}, %s::json) AS {alias} "
            "WHERE {policies})"
        ).format(
            t=table.ident,
            alias=sql.Identifier(table.name),
            policies=self._policies(table, listener.role),
        )
        with self.conn.transaction():
            set_claims(self.conn, Caller(listener.role, listener.claims), "GET", "/realtime")
            found = self.conn.execute(statement, (json.dumps(record),)).fetchone()
        return bool(found and found[0])
