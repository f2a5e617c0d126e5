"""Builds that read the database, as a Next.js page prerendered from Supabase does.

An app may ship `forge-sandbox.json` at its root with `{"build_reads_tables": ["public.notes"]}`.
Its build then reads those tables from the Supabase project that the deployment's
`NEXT_PUBLIC_SUPABASE_URL` names (`.../sb/<ref>`), when the build is created (the sandbox's
stand-in for "while it builds"). A table that does not exist yet — the migrations have not run
— makes the deployment end in ERROR with `errorCode` BUILD_FAILED, as a real build would.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

import psycopg

from sandbox.postgres import PostgresServer
from sandbox.vercel.files import FileStore

MARKER = "forge-sandbox.json"
_REF = re.compile(r"/sb/([a-z]{20})/?$")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


def tables_read(files: FileStore, manifest: dict[str, str], root: str | None) -> list[str]:
    path = posixpath.normpath(posixpath.join(root, MARKER) if root else MARKER)
    sha = manifest.get(path)
    if sha is None or not files.has(sha):
        return []
    try:
        declared = json.loads(files.read(sha)).get("build_reads_tables", [])
    except (ValueError, AttributeError):
        return []
    return [t for t in declared if isinstance(t, str) and _TABLE.match(t)]


def build_error(
    postgres: PostgresServer, tables: list[str], supabase_url: str | None
) -> str | None:
    """Why the build fails, or None when every table it reads exists."""
    if not tables:
        return None
    match = _REF.search(supabase_url or "")
    if match is None:
        return 'Error occurred prerendering page "/": NEXT_PUBLIC_SUPABASE_URL is not set'
    try:
        with postgres.admin(match.group(1)) as conn:
            for table in tables:
                row = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
                if row is None or row[0] is None:
                    return (
                        f'Error occurred prerendering page "/": relation "{table}" does not exist'
                    )
    except psycopg.Error as e:
        return f'Error occurred prerendering page "/": {str(e).strip().splitlines()[0]}'
    return None


def error_fields(deployment: dict[str, Any]) -> dict[str, Any]:
    return {
        "errorCode": "BUILD_FAILED",
        "errorMessage": deployment["buildError"],
        "errorStep": "build",
    }
