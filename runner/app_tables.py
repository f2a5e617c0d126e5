"""The tables an app's code queries through the Data API, read from its sources.

Supabase's query builder names its table in `.from('name')`: `supabase.from('notes')`, or any
client whose `.from('name')` goes on with `.select(`, `.insert(`, `.update(`, `.upsert(` or
`.delete(` (`.schema('s').from('t')` names another schema). Neither `storage.from('bucket')`
(a Storage bucket) nor `Buffer.from(...)` / `Array.from(...)` is a table. What each table is
used for follows from the call: select reads, insert / update / delete write, upsert inserts
and updates; a bare `supabase.from('t')` counts as a read.

Only literal names are seen (a name held in a variable is not); a call in a comment counts.
Pure: the caller hands in `(path, text)` pairs (the work copy's files: what is pushed, never
`node_modules` or the app's ignored build output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SOURCE_SUFFIXES = (
    ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts",
    ".vue", ".svelte", ".astro", ".html",
)  # fmt: skip
MAX_SOURCE_BYTES = 2_000_000
NOT_TABLES = frozenset({"storage", "buffer", "array", "object", "uint8array", "string"})
PRIVILEGES = {
    "select": ("SELECT",),
    "insert": ("INSERT",),
    "update": ("UPDATE",),
    "upsert": ("INSERT", "UPDATE"),
    "delete": ("DELETE",),
}

_CALL = re.compile(
    r"""(?P<receiver>[A-Za-z_$][\w$]*|\))?\s*
        (?:\.\s*schema\s*\(\s*(?P<sq>['"`])(?P<schema>[A-Za-z_][\w]*)(?P=sq)\s*\)\s*)?
        \.\s*from\s*\(\s*(?P<q>['"`])(?P<table>[A-Za-z_][\w$-]*)(?P=q)\s*\)
        (?:\s*\.\s*(?P<op>select|insert|update|upsert|delete)\s*\()?""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class AppTable:
    schema: str
    name: str
    privileges: frozenset[str]  # SELECT / INSERT / UPDATE / DELETE the code needs
    files: tuple[str, ...]  # where it is queried, in path order

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def calls(text: str) -> list[tuple[str, str, str | None]]:
    """(schema, table, operation or None) of each query-builder call in `text`."""
    found = []
    for match in _CALL.finditer(text):
        receiver = (match.group("receiver") or "").lower()
        op = match.group("op")
        if receiver in NOT_TABLES:
            continue
        if op is None and not receiver.startswith("supabase"):
            continue
        found.append((match.group("schema") or "public", match.group("table"), op))
    return found


def scan(files: Iterable[tuple[str, bytes]]) -> list[AppTable]:
    """The tables queried in `files` (`(path, content)`; non-source files are skipped)."""
    needs: dict[tuple[str, str], set[str]] = {}
    where: dict[tuple[str, str], list[str]] = {}
    for path, content in sorted(files):
        if not path.endswith(SOURCE_SUFFIXES) or len(content) > MAX_SOURCE_BYTES:
            continue
        for schema, table, op in calls(content.decode("utf-8", errors="replace")):
            key = (schema, table)
            needs.setdefault(key, set()).update(PRIVILEGES[op or "select"])
            if path not in where.setdefault(key, []):
                where[key].append(path)
    return [
        AppTable(schema, table, frozenset(needs[(schema, table)]), tuple(where[(schema, table)]))
        for schema, table in sorted(needs)
    ]
