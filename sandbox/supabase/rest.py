"""A project's PostgREST (`/rest/v1/<table>`) over its real PostgreSQL database.

Each request is one transaction on the project's database, run as PostgREST runs it: `SET
LOCAL ROLE <the token's role>` and `request.jwt.claims` set, so the project's grants and RLS
policies decide (`service_role` has BYPASSRLS). Reads and writes go through PostgreSQL's own
JSON (`json_agg`, `json_populate_recordset`), errors are PostgREST's bodies `{code, details,
hint, message}` with its status codes. The grammar served is `rest_query`'s.

Choices: only the `public` schema is exposed; `Prefer: missing=default` is accepted and acts
as the default (a column absent from one object of a bulk insert is NULL); a single-object
answer (`Accept: application/vnd.pgrst.object+json`) with other than one row rolls back.
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
from sandbox.supabase import rest_query
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
        if self.code == "PGRST301":
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

    @classmethod
    def parse(cls, headers: list[str]) -> Prefer:
        items = {p.strip() for h in headers for p in h.split(",") if p.strip()}
        resolution = None
        if "resolution=merge-duplicates" in items:
            resolution = "merge"
        elif "resolution=ignore-duplicates" in items:
            resolution = "ignore"
        return cls("return=representation" in items, resolution, "count=exact" in items)


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
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{table}"',)).fetchone()
    if not exists or not exists[0]:
        raise RestError(404, "42P01", f'relation "public.{table}" does not exist')
    method = "GET" if request_method == "HEAD" else request_method
    returning = method == "GET" or prefer.representation or single
    params: list[object] = []
    if method == "GET":
        statement: sql.Composed = rest_query.read(ident, query)
        params = list(query.params)
    else:
        rows = _rows_of(body, method) if method != "DELETE" else []
        columns = query.columns or list(dict.fromkeys(k for row in rows for k in row))
        if method == "POST":
            conflict = query.on_conflict or (
                _primary_key(conn, table) if prefer.resolution else None
            )
            statement = rest_query.insert(ident, columns, conflict, prefer.resolution, returning)
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
            sql.SQL("SELECT {} FROM ({}) _s").format(rest_query.projection(query), source),
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


def rest_handler(
    ctx: Context,
) -> Callable[[Request, dict[str, Any], ApiKey], Awaitable[Response]]:
    async def handle(request: Request, project: dict[str, Any], key: ApiKey) -> Response:
        try:
            answer = await _answer(ctx, request, project, key)
        except RestError as e:
            return e.response()
        headers = {}
        if request.method in ("GET", "HEAD"):
            start = int(request.query_params.get("offset", "0") or 0)
            span = f"{start}-{start + answer.rows - 1}" if answer.rows else "*"
            headers["Content-Range"] = f"{span}/{'*' if answer.total is None else answer.total}"
        media = OBJECT if answer.single else "application/json"
        if answer.body is None or request.method == "HEAD":
            return Response(status_code=answer.status, headers=headers)
        return Response(
            answer.body,
            status_code=answer.status,
            headers=headers,
            media_type=f"{media}; charset=utf-8",
        )

    return handle


async def _answer(ctx: Context, request: Request, project: dict[str, Any], key: ApiKey) -> Answer:
    try:
        who = caller(request, project, key)
    except JwtRefused as e:
        raise RestError(401, "PGRST301", str(e)) from e
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
