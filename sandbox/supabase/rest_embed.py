"""PostgREST's resource embedding, one level (`select=*,project:projects(*)`), as supabase-py
and supabase-js send it: the relationship is found from the foreign keys between the two
tables, as PostgREST's schema cache finds it.

- The table read holds the foreign key (many-to-one): the embedded row is an object, or null.
- The embedded table holds it (one-to-many): the rows are an array, `[]` when there are none.
- No foreign key either way: `PGRST200`; more than one: `PGRST201` (PostgREST asks for a hint,
  `table!fk_name(...)`, which the sandbox does not read).

The embedded rows are read inside the same `SET LOCAL ROLE` as the rest of the request, so the
embedded table's grants and RLS apply to them, as on PostgREST.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from sandbox.supabase.rest_query import Embed


class EmbedError(Exception):
    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


_KEYS = """
SELECT c.conrelid = to_regclass(%(main)s) AS outward, c.conname,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
WHERE c.contype = 'f' AND (
  (c.conrelid = to_regclass(%(main)s) AND c.confrelid = to_regclass(%(other)s)) OR
  (c.conrelid = to_regclass(%(other)s) AND c.confrelid = to_regclass(%(main)s)))
"""


def subquery(conn: psycopg.Connection[Any], main: str, embed: Embed) -> sql.Composable:
    """The select-list item `(<subquery>) AS alias` for `embed` on a read of `main`."""
    names = {"main": f'public."{main}"', "other": f'public."{embed.table}"'}
    found = conn.execute(_KEYS, names).fetchall()
    if not found or main == embed.table:
        raise EmbedError(
            400,
            "PGRST200",
            f"Could not find a relationship between '{main}' and '{embed.table}' in the "
            "schema cache",
            f"Searched for a foreign key relationship between '{main}' and '{embed.table}' "
            "in the schema 'public', but no matches were found.",
        )
    if len(found) > 1:
        raise EmbedError(
            300,
            "PGRST201",
            f"Could not embed because more than one relationship was found for '{main}' and "
            f"'{embed.table}'",
        )
    outward, _, local, remote = found[0]
    here, there = sql.Identifier(main), sql.Identifier(embed.table)
    if outward:  # main.local -> other.remote
        mine, theirs = list(local), list(remote)
    else:  # other.local -> main.remote
        mine, theirs = list(remote), list(local)
    match = sql.SQL(" AND ").join(
        sql.SQL("{t}.{c} = {m}.{k}").format(
            t=there, c=sql.Identifier(c), m=here, k=sql.Identifier(k)
        )
        for c, k in zip(theirs, mine, strict=True)
    )
    columns = (
        sql.SQL("*")
        if embed.columns is None
        else sql.SQL(", ").join(sql.Identifier(c) for c in embed.columns)
    )
    rows = sql.SQL("SELECT {} FROM public.{} WHERE {}").format(columns, there, match)
    shape = "row_to_json(_e)" if outward else "coalesce(json_agg(_e), '[]'::json)"
    return sql.SQL("(SELECT " + shape + " FROM ({}) _e) AS {}").format(
        rows, sql.Identifier(embed.alias)
    )
