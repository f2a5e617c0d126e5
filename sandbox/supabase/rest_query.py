"""PostgREST's URL grammar, the subset supabase-py and supabase-js send, turned into SQL.

Pure: a query string and a table in, `psycopg.sql.Composed` and its parameters out. Every
identifier from the URL is quoted with `sql.Identifier`, every value is a parameter (sent as
PostgreSQL's `unknown` type, so the column's type decides, as PostgREST's casts do).

Supported: `select=*` or `col,alias:col`; filters `col=[not.]op.value` with eq, neq, gt, gte,
lt, lte, like, ilike, is (null/true/false/unknown), in.(a,b,"c d"); `order=col[.asc|.desc]
[.nullsfirst|.nullslast],...`; `limit`, `offset`; `on_conflict`, `columns` for writes;
logic trees `or=`, `and=`, `not.or=`, `not.and=` (`rest_logic`); one level of embedding,
`alias:table(columns)` (`rest_embed`). Anything else (deeper embedding, JSON paths) is a
PGRST100 parse error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg import sql

from sandbox.supabase import rest_logic

_OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "LIKE"}
_OPS["ilike"] = "ILIKE"
_IS = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns"})


class ParseError(Exception):
    """PGRST100: the request's query string is not in the grammar served."""

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def _name(raw: str, what: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if not _NAME.match(name):
        raise ParseError(f'"failed to parse {what}"', f"unexpected {raw!r}: not a column name")
    return name


@dataclass(frozen=True)
class Query:
    """One parsed request: what to return, which rows, in which order."""

    select: list[tuple[str, str]] | None = None  # (alias, column); None = *
    where: sql.Composable = field(default_factory=lambda: sql.SQL("TRUE"))
    params: list[object] = field(default_factory=list)
    order: sql.Composable | None = None
    limit: int | None = None
    offset: int | None = None
    on_conflict: list[str] | None = None
    columns: list[str] | None = None
    embeds: list[Embed] = field(default_factory=list)


@dataclass(frozen=True)
class Embed:
    """`alias:table(columns)` in `select`: one level of resource embedding (`rest_embed`)."""

    alias: str
    table: str
    columns: list[str] | None  # None: *


def _select_items(raw: str) -> list[str]:
    items, current, depth = [], "", 0
    for ch in raw:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return items


def parse_select(raw: str | None) -> tuple[list[tuple[str, str]] | None, list[Embed]]:
    """(the columns, None for *; the embedded tables)."""
    if raw is None or raw.strip() in ("", "*"):
        return None, []
    picked: list[tuple[str, str]] = []
    embeds: list[Embed] = []
    star = False
    for item in (i.strip() for i in _select_items(raw)):
        if "(" in item or ")" in item:
            head, _, inner = item.partition("(")
            if not inner.endswith(")") or "(" in inner:
                raise ParseError(
                    '"failed to parse select parameter"',
                    f"{item!r}: the sandbox embeds one level, as alias:table(columns)",
                )
            alias, _, table = head.partition(":")
            table = table or alias
            inner = inner[:-1].strip()
            columns = (
                None
                if inner in ("", "*")
                else [_name(c, "select parameter") for c in inner.split(",")]
            )
            name = _name(table, "select parameter")
            embeds.append(Embed(_name(alias, "select parameter"), name, columns))
            continue
        if item == "*":
            star = True
            continue
        alias, _, column = item.partition(":")
        if not column:
            alias = column = alias
        picked.append((_name(alias, "select parameter"), _name(column, "select parameter")))
    return (None if star or not picked else picked), embeds


def _in_values(raw: str) -> list[str]:
    if not (raw.startswith("(") and raw.endswith(")")):
        raise ParseError('"failed to parse filter (in)"', f"expected (a,b,...), got {raw!r}")
    values, current, quoted = [], "", False
    for ch in raw[1:-1]:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            values.append(current)
            current = ""
        else:
            current += ch
    values.append(current)
    return values


def _condition(column: str, expression: str) -> tuple[sql.Composable, list[object]]:
    negate = expression.startswith("not.")
    if negate:
        expression = expression[4:]
    op, dot, value = expression.partition(".")
    if not dot:
        raise ParseError(f'"failed to parse filter ({expression})"', "expected <operator>.<value>")
    col = sql.Identifier(_name(column, "filter"))
    params: list[object] = []
    if op in _OPS:
        clause: sql.Composable = sql.SQL("{} " + _OPS[op] + " %s").format(col)
        params.append(value.replace("*", "%") if op in ("like", "ilike") else value)
    elif op == "is":
        if value.lower() not in _IS:
            raise ParseError(f'"failed to parse filter (is.{value})"', "null, true or false")
        clause = sql.SQL("{} IS " + _IS[value.lower()]).format(col)
    elif op == "in":
        values = _in_values(value)
        clause = sql.SQL("{} IN ({})").format(
            col, sql.SQL(", ").join(sql.SQL("%s") for _ in values)
        )
        params.extend(values)
    else:
        raise ParseError(f'"failed to parse filter ({op}.{value})"', f"unknown operator {op!r}")
    if negate:
        clause = sql.SQL("NOT ({})").format(clause)
    return clause, params


def _order(raw: str) -> sql.Composable:
    terms: list[sql.Composable] = []
    for item in raw.split(","):
        column, *modifiers = item.split(".")
        parts: list[sql.Composable] = [sql.Identifier(_name(column, "order"))]
        for modifier in modifiers:
            words = {
                "asc": "ASC",
                "desc": "DESC",
                "nullsfirst": "NULLS FIRST",
                "nullslast": "NULLS LAST",
            }
            if modifier not in words:
                raise ParseError('"failed to parse order"', f"unexpected {modifier!r}")
            parts.append(sql.SQL(words[modifier]))
        terms.append(sql.SQL(" ").join(parts))
    return sql.SQL(", ").join(terms)


def _integer(raw: str, what: str) -> int:
    if not raw.isdigit():
        raise ParseError(f'"failed to parse {what} parameter"', f"not a number: {raw!r}")
    return int(raw)


def parse(items: Iterable[tuple[str, str]]) -> Query:
    """The query string's (key, value) pairs, in order, as a Query."""
    conditions: list[sql.Composable] = []
    params: list[object] = []
    values: dict[str, str] = {}
    for key, value in items:
        if key in RESERVED:
            values[key] = value
            continue
        if key in rest_logic.KEYS:
            try:
                clause, more = rest_logic.tree(key, value, _condition)
            except rest_logic.LogicError as e:
                raise ParseError(f'"failed to parse logic tree ({value})"', str(e)) from e
            conditions.append(clause)
            params.extend(more)
            continue
        if "->" in key:
            raise ParseError(f'"failed to parse {key}"', "not served by the sandbox")
        clause, more = _condition(key, value)
        conditions.append(clause)
        params.extend(more)
    columns = values.get("columns")
    on_conflict = values.get("on_conflict")
    select, embeds = parse_select(values.get("select"))
    return Query(
        select=select,
        embeds=embeds,
        where=sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE"),
        params=params,
        order=_order(values["order"]) if "order" in values else None,
        limit=_integer(values["limit"], "limit") if "limit" in values else None,
        offset=_integer(values["offset"], "offset") if "offset" in values else None,
        on_conflict=[_name(c, "on_conflict") for c in on_conflict.split(",")]
        if on_conflict
        else None,
        columns=[_name(c, "columns") for c in columns.split(",")] if columns else None,
    )


def projection(query: Query) -> sql.Composable:
    if query.select is None:
        return sql.SQL("*")
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.Identifier(column), sql.Identifier(alias))
        for alias, column in query.select
    )


def as_json(rows: sql.Composable, strip_nulls: bool) -> sql.Composed:
    """`rows` (a SELECT over the source) as one JSON array text, PostgreSQL's own rendering."""
    item = sql.SQL("json_strip_nulls(row_to_json(_r))" if strip_nulls else "row_to_json(_r)")
    return sql.SQL("SELECT coalesce(json_agg({}), '[]')::text, count(*) FROM ({}) _r").format(
        item, rows
    )


def read(
    table: sql.Identifier, query: Query, embedded: list[sql.Composable] | None = None
) -> sql.Composed:
    """The rows' SELECT; `embedded`: the embeds' select-list items (`rest_embed.subquery`)."""
    listed = sql.SQL(", ").join([projection(query), *(embedded or [])])
    parts: list[sql.Composable] = [
        sql.SQL("SELECT {} FROM public.{} WHERE {}").format(listed, table, query.where)
    ]
    if query.order is not None:
        parts.append(sql.SQL("ORDER BY {}").format(query.order))
    if query.limit is not None:
        parts.append(sql.SQL("LIMIT {}").format(sql.Literal(query.limit)))
    if query.offset is not None:
        parts.append(sql.SQL("OFFSET {}").format(sql.Literal(query.offset)))
    return sql.SQL(" ").join(parts)


def count(table: sql.Identifier, query: Query) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM public.{} WHERE {}").format(table, query.where)


def insert(
    table: sql.Identifier,
    columns: list[str],
    conflict: list[str] | None,
    resolution: str | None,
    returning: bool,
    defaults: dict[str, str] | None = None,
) -> sql.Composed:
    """INSERT from the JSON body (parameter `%s`, an array of objects), as PostgREST does:
    each object through `json_populate_record(NULL::table, object)`, only the body's columns.
    `defaults` (`Prefer: missing=default`: column -> its default expression, the database's
    own text from `pg_get_expr`) fills a column an object lacks; without it, NULL."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    values = sql.SQL(", ").join(
        sql.SQL("CASE WHEN _j.j::jsonb ? {k} THEN _.{c} ELSE ({d}) END").format(
            k=sql.Literal(c),
            c=sql.Identifier(c),
            d=sql.SQL(defaults[c]),
        )
        if defaults and c in defaults
        else sql.SQL("_.{}").format(sql.Identifier(c))
        for c in columns
    )
    statement = sql.SQL(
        "INSERT INTO public.{t} ({cols}) SELECT {values} FROM json_array_elements(%s::json) "
        "_j(j), LATERAL json_populate_record(NULL::public.{t}, _j.j) _"
    ).format(t=table, cols=cols, values=values)
    if resolution is not None:
        target = sql.SQL(", ").join(sql.Identifier(c) for c in conflict or [])
        updated = [c for c in columns if c not in (conflict or [])]
        if resolution == "ignore" or not updated:
            action: sql.Composable = sql.SQL("DO NOTHING")
        else:
            action = sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updated
                )
            )
        statement = sql.SQL("{} ON CONFLICT ({}) {}").format(statement, target, action)
    if returning:
        statement = sql.SQL("{} RETURNING *").format(statement)
    return statement


def update(
    table: sql.Identifier, columns: list[str], query: Query, returning: bool
) -> sql.Composed:
    """UPDATE the rows the filters select with the body's columns (parameter `%s`, an
    object), through `json_populate_record` so each value gets its column's type."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    statement = sql.SQL(
        "UPDATE public.{t} SET ({cols}) = (SELECT {cols} "
        "FROM json_populate_record(NULL::public.{t}, %s::json) _) WHERE {where}"
    ).format(t=table, cols=cols, where=query.where)
    if returning:
        statement = sql.SQL("{} RETURNING *").format(statement)
    return statement


def delete(table: sql.Identifier, query: Query, returning: bool) -> sql.Composed:
    statement = sql.SQL("DELETE FROM public.{} WHERE {}").format(table, query.where)
    if returning:
        statement = sql.SQL("{} RETURNING *").format(statement)
    return statement
