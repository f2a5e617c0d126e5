"""`FORGE_DATABASE_URL` to a store.

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` (SQLAlchemy's spelling), or a
  bare file path → SQLite. An in-memory database (`sqlite://`, `:memory:`) is refused: the
  queue must outlive the process and the store's connections must share one database.
- `postgresql://...` or `postgres://...` → PostgreSQL (libpq URL; the password never appears in
  an error message). `password` is its password when the URL has none (FORGE_DATABASE_PASSWORD
  or its _FILE); an SQLite store has no use for one.

The store is returned unmigrated: the caller runs `store.migrate()` once at start.
"""

from __future__ import annotations

import re
from pathlib import Path

from dispatcher.core.ports import Store
from dispatcher.store.schema import redact_url

_HELP = "use sqlite:///PATH, a file path, or postgresql://USER@HOST:PORT/DB"
_CONNINFO = re.compile(r"^\s*\w+\s*=")  # libpq "key=value ..." rather than a path or URL


def open_store(database_url: str, password: str = "") -> Store:
    url = database_url.strip()
    if not url:
        raise ValueError(f"the database URL is empty: {_HELP}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        if _CONNINFO.match(url):  # may hold a password: not echoed
            raise ValueError(f"unsupported database URL: a libpq key=value string; {_HELP}")
        if url == ":memory:":
            raise ValueError(f"unsupported database URL ':memory:' (in-memory): {_HELP}")
        return _sqlite(Path(url).expanduser())
    scheme = scheme.lower()
    if scheme == "sqlite":
        # sqlite:///x.db → "x.db"; sqlite:////var/x.db → "/var/x.db"
        if not rest.startswith("/") or rest in ("/", "/:memory:") or "?" in rest:
            raise ValueError(
                f"unsupported SQLite URL {url!r}: a file is needed, as sqlite:///relative.db or "
                "sqlite:////absolute/path.db (no in-memory database, no query string)"
            )
        return _sqlite(Path(rest[1:]).expanduser())
    if scheme in ("postgresql", "postgres"):
        from dispatcher.store.postgres import PostgresStore  # psycopg only when used

        return PostgresStore(url, password=password)
    raise ValueError(f"unsupported database URL {redact_url(url)!r}: {_HELP}")


def _sqlite(path: Path) -> Store:
    if path.is_dir():
        raise ValueError(f"the SQLite database path {str(path)!r} is a directory: name a file")
    from dispatcher.store.sqlite import SQLiteStore

    return SQLiteStore(path)
