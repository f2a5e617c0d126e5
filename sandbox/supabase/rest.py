"""A project's PostgREST (`/rest/v1/<table>`) over its real PostgreSQL database.

Each request is one transaction on the project's database, run as PostgREST runs it: `SET
LOCAL ROLE <the token's role>` and `request.jwt.claims` set, so the project's grants and RLS
policies decide (`service_role` has BYPASSRLS). Reads and writes go through PostgreSQL's own
JSON (`json_agg`, `json_populate_recordset`), errors are PostgREST's bodies `{code, details,
hint, message}` with its status codes. The grammar served is `rest_query`'s.

As PostgREST 12/13 answers (its `Response.hs`, `RangeQuery.hs`):
- `Content-Range` on every answer: a read `<first>-<last>/<total>`, an insert or delete
  `*/<total>`, an update `0-<n-1>/<total>`, the total `*` unless `Prefer: count=exact`; a read
  with a count that returns part of the rows is `206`, one whose offset is past the end `416`.
- `Prefer: missing=default`: a column named (by `columns=` or another object of a bulk insert)
  but absent from an object takes the column's default, not NULL (`Preference-Applied` says so).
- An unknown table is `404 PGRST205`, a body column the table lacks `400 PGRST204`.

Choices: only the `public` schema is exposed; a single-object answer (`Accept:
application/vnd.pgrst.object+json`) with other than one row rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.context import Context
from sandbox.supabase import rest_embed, rest_query
from sandbox.supabase.api_auth import ApiKey, Caller, JwtRefused, caller
from sandbox.supabase.platform import ensure_platform
from sandbox.supabase.state import defaults_2025

OBJECT = "application/vnd.pgrst.object+json"
SCHEMAS = ("public", "graphql_public")

# PostgREST's mapping of SQLSTATE to HTTP status (its docs' "SQLSTATE to HTTP" table).
_BY_CODE = {"23503": 409, "23505": 409, "25006": 405, "42P01": 404, "42883": 404, "42P17": 500}
_BY_CLASS = {"08": 503, "09": 500, "0L": 403, "0P": 403, "22": 400, "23": 400, "28": 403}
_BY_CLASS |= {"2D": 500, "38": 500, "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500}
_BY_CLASS |= {"55": 500, "57": 500, "58": 500, "F0": 500, "HV": 500, "P0": 400, "XX": 500}


@dataclass
class RestError(Exception):
    status: int
    code: str
    message: str
    details: str | None = None
    hint: str | None = None

    def response(self) -> Response:
        headers = {}
        if self.code in ("PGRST301", "PGRST303"):
            headers["WWW-Authenticate"] = (
                f'Bearer error="invalid_token", error_description="{self.message}"'
            )
        return JSONResponse(
            {
                "code": self.code,
                "details": self.details,
                "hint": self.hint,
                "message": self.message,
            },
            status_code=self.status,
            headers=headers,
        )


def jwt_refused(e: JwtRefused) -> RestError:
    """PostgREST's 401 for a bearer token: PGRST303 when its claims fail (expired), else
    PGRST301 (not a JWT of this project)."""
    return RestError(401, "PGRST303" if str(e) == "JWT expired" else "PGRST301", str(e))


def from_postgres(e: psycopg.Error, role: str) -> RestError:
    diag = e.diag
    code = diag.sqlstate or "XX000"
    if code == "42501":
        status = 401 if role == "anon" else 403
    else:
        status = _BY_CODE.get(code) or _BY_CLASS.get(code[:2]) or 400
    return RestError(
        status,
        code,
        diag.message_primary or str(e).strip(),
        diag.message_detail,
        diag.message_hint,
    )


@dataclass(frozen=True)
class Prefer:
    representation: bool
    resolution: str | None  # merge | ignore
    count: bool
    missing_default: bool = False

    @classmethod
    def parse(cls, headers: list[str]) -> Prefer:
        items = {p.strip() for h in headers for p in h.split(",") if p.strip()}
        resolution = None
        if "resolution=merge-duplicates" in items:
            resolution = "merge"
        elif "resolution=ignore-duplicates" in items:
            resolution = "ignore"
        return cls(
            "return=representation" in items,
            resolution,
            "count=exact" in items,
            "missing=default" in items,
        )


@dataclass(frozen=True)
class Answer:
    status: int
    body: str | None
    rows: int
    total: int | None
    single: bool


def set_claims(conn: psycopg.Connection[Any], who: Caller, method: str, path: str) -> None:
    conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(who.role)))
    conn.execute(
        "SELECT set_config('request.jwt.claims', %s, true), set_config('request.method', %s, "
        "true), set_config('request.path', %s, true), set_config('search_path', 'public', true)",
        (json.dumps(who.claims), method, path),
    )


def _columns(conn: psycopg.Connection[Any], table: str) -> dict[str, str | None]:
    """The table's columns and their default expressions (identity columns' `nextval`); empty
    when there is no such table."""
    rows = conn.execute(
        "SELECT a.attname, CASE WHEN a.attidentity = 'd' THEN format('nextval(%%L)', "
        "pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)) "
        "ELSE pg_get_expr(d.adbin, d.adrelid) END "
        "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
        "AND d.adnum = a.attnum WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        (f'public."{table}"',),
    ).fetchall()
    return {str(name): None if default is None else str(default) for name, default in rows}


def _primary_key(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
        (f'public."{table}"',),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _rows_of(body: bytes, method: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(body or b"null")
    except ValueError as e:
        raise RestError(400, "PGRST102", "Empty or invalid json", str(e)) from e
    items = value if isinstance(value, list) and method == "POST" else [value]
    if not all(isinstance(item, dict) for item in items):
        raise RestError(400, "PGRST102", "Empty or invalid json", "expected JSON objects")
    return items


def _execute(
    conn: psycopg.Connection[Any],
    who: Caller,
    request_method: str,
    table: str,
    query: rest_query.Query,
    prefer: Prefer,
    body: bytes,
    single: bool,
    strip_nulls: bool,
) -> Answer:
    ident = sql.Identifier(table)
    known = _columns(conn, table)
    if not known:
        raise RestError(
            404, "PGRST205", f"Could not find the table 'public.{table}' in the schema cache"
        )
    method = "GET" if request_method == "HEAD" else request_method
    returning = method == "GET" or prefer.representation or single
    params: list[object] = []
    if method == "GET":
        try:
            embedded = [rest_embed.subquery(conn, table, e) for e in query.embeds]
        except rest_embed.EmbedError as e:
            raise RestError(e.status, e.code, e.message, e.details) from e
        statement: sql.Composed = rest_query.read(ident, query, embedded)
        params = list(query.params)
    else:
        rows = _rows_of(body, method) if method != "DELETE" else []
        columns = query.columns or list(dict.fromkeys(k for row in rows for k in row))
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise RestError(
                400,
                "PGRST204",
                f"Could not find the '{unknown[0]}' column of '{table}' in the schema cache",
            )
        if method == "POST":
            conflict = query.on_conflict or (
                _primary_key(conn, table) if prefer.resolution else None
            )
            defaults = (
                {c: d for c, d in known.items() if d is not None and c in columns}
                if prefer.missing_default
                else {}
            )
            statement = rest_query.insert(
                ident, columns, conflict, prefer.resolution, returning, defaults
            )
            params = [json.dumps(rows)]
        elif method == "PATCH":
            statement = rest_query.update(ident, columns, query, returning)
            params = [json.dumps(rows[0]), *query.params]
        else:
            statement = rest_query.delete(ident, query, returning)
            params = list(query.params)
        if not columns and method != "DELETE":
            return Answer(201 if method == "POST" else 200, "[]", 0, None, single)
    ok = 201 if method == "POST" else 200
    if returning:
        source = statement if method == "GET" else sql.SQL("SELECT * FROM _written")
        wrapped = rest_query.as_json(
            sql.SQL("SELECT {} FROM ({}) _s").format(
                sql.SQL("*") if method == "GET" else rest_query.projection(query), source
            ),
            strip_nulls,
        )
        if method != "GET":
            wrapped = sql.SQL("WITH _written AS ({}) {}").format(statement, wrapped)
        found = conn.execute(wrapped, params).fetchone()
        text, n = (str(found[0]), int(found[1])) if found else ("[]", 0)
    else:
        cur = conn.execute(statement, params)
        text, n = None, max(cur.rowcount, 0)
        ok = 201 if method == "POST" else 204
    total = None
    if prefer.count and method == "GET":
        counted = conn.execute(rest_query.count(ident, query), query.params).fetchone()
        total = int(counted[0]) if counted else 0
    elif prefer.count:
        total = n  # a write's count is the rows it wrote
    if single and n != 1:
        raise RestError(
            406,
            "PGRST116",
            "JSON object requested, multiple (or no) rows returned",
            f"The result contains {n} rows",
        )
    if single and text is not None:
        text = json.dumps(json.loads(text)[0])
    return Answer(ok, text, n, total, single)


def content_range(first: int, last: int, total: int | None) -> str:
    """PostgREST's `Content-Range` value: `first-last/total`, `*` for an empty span or an
    unknown total."""
    span = f"{first}-{last}" if first <= last and total != 0 else "*"
    return f"{span}/{'*' if total is None else total}"


def rest_handler(
    ctx: Context,
) -> Callable[[Request, dict[str, Any], ApiKey], Awaitable[Response]]:
    async def handle(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        try:
            answer = await _answer(ctx, request, project, key)
        except RestError as e:
            return e.response()
        status, headers = answer.status, {}
        if request.method in ("GET", "HEAD"):
            start = int(request.query_params.get("offset", "0") or 0)
            headers["Content-Range"] = content_range(start, start + answer.rows - 1, answer.total)
            if answer.total is not None and start > answer.total:
                return RestError(
                    416,
                    "PGRST103",
                    "Requested range not satisfiable",
                    f"An offset of {start} was requested, but there are only {answer.total} rows.",
                ).response()
            if answer.total is not None and answer.rows < answer.total:
                status = 206
        elif request.method == "PATCH":
            headers["Content-Range"] = content_range(0, answer.rows - 1, answer.total)
        else:
            headers["Content-Range"] = content_range(1, 0, answer.total)
        prefer = Prefer.parse(request.headers.getlist("prefer"))
        if prefer.missing_default and request.method in ("POST", "PATCH"):
            headers["Preference-Applied"] = "missing=default"
        media = OBJECT if answer.single else "application/json"
        if answer.body is None or request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return Response(
            answer.body,
            status_code=status,
            headers=headers,
            media_type=f"{media}; charset=utf-8",
        )

    return handle


async def _answer(ctx: Context, request: Request, project: dict[str, Any], key: ApiKey) -> Answer:
    try:
        who = caller(request, project, key)
    except JwtRefused as e:
        raise jwt_refused(e) from e
    header = "accept-profile" if request.method in ("GET", "HEAD") else "content-profile"
    schema = request.headers.get(header, "public")
    if schema not in SCHEMAS:
        raise RestError(
            406,
            "PGRST106",
            "The schema must be one of the following: " + ", ".join(SCHEMAS),
        )
    try:
        query = rest_query.parse(request.query_params.multi_items())
    except rest_query.ParseError as e:
        raise RestError(400, "PGRST100", e.message, e.details) from e
    accept = request.headers.get("accept", "")
    single = accept.startswith(OBJECT)
    strip_nulls = "nulls=stripped" in accept
    prefer = Prefer.parse(request.headers.getlist("prefer"))
    body = await request.body()
    table = request.path_params["table"]
    pg, dbname, owner = ctx.postgres, project["db_name"], project["db_role"]

    expose = defaults_2025(project)

    def run() -> Answer:
        ensure_platform(pg, owner, dbname, expose)
        with pg.admin(dbname) as conn:
            try:
                with conn.transaction():
                    set_claims(conn, who, request.method, request.url.path)
                    return _execute(
                        conn, who, request.method, table, query, prefer, body, single, strip_nulls
                    )
            except psycopg.Error as e:
                raise from_postgres(e, who.role) from e

    return await run_in_threadpool(run)
