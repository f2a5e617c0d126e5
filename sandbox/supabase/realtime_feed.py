"""The change feed behind a project's Realtime: the project's real PostgreSQL, read through
logical decoding with wal2json (Debian's `postgresql-15-wal2json`), as Supabase's own Realtime
read it (its `walrus`: wal2json plus an RLS check per subscriber).

Why logical decoding rather than triggers with LISTEN/NOTIFY: it sees every committed change of
every table in the `supabase_realtime` publication with no object added to the project's
schema (a trigger would be the sandbox's own DDL in the user's database, to keep in step with
each `ALTER PUBLICATION`), in commit order by construction, with the commit time, and without
NOTIFY's 8000-byte payload limit (a deployments row with its log tail is larger).

One `Feed` per project database while anyone listens: a thread holding one connection with a
temporary logical slot (dropped by PostgreSQL when the connection ends, so nothing is left
behind) and reading it with `pg_logical_slot_get_changes` every `POLL_S`. Each change of a
published table (and of a published action) goes, in commit order, to the listeners with a
matching binding whose role may see it (`realtime_access`).

Needs `wal_level = logical`: the sandbox's own cluster is started with it; a cluster given with
`--postgres-url` is checked (`check_wal_level`) and a join is refused naming the setting.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from sandbox.postgres import PostgresServer
from sandbox.supabase import realtime_access
from sandbox.supabase.realtime_wire import Binding

log = logging.getLogger("forge-sandbox.realtime")
POLL_S = 0.05
_OPTIONS = ("format-version", "2", "include-timestamp", "1", "include-types", "0")
_KINDS = {"I": "INSERT", "U": "UPDATE", "D": "DELETE"}


class FeedError(Exception):
    """The database cannot stream changes; the message names the setting or package."""


@dataclass(frozen=True)
class Change:
    schema: str
    table: str
    kind: str  # INSERT | UPDATE | DELETE
    new: dict[str, Any] | None  # wal2json's values of the new row
    old: dict[str, Any] | None  # its values of the old row's replica identity
    commit_timestamp: str


@dataclass
class Listener:
    """One joined channel: its bindings, who it is now (the token may be replaced), and a
    thread-safe `send(ids, data)`."""

    bindings: list[Binding]
    role: str
    claims: dict[str, Any]
    send: Callable[[list[int], dict[str, Any]], None]
    key: int = field(default_factory=lambda: id(object()))


def check_wal_level(pg: PostgresServer) -> str | None:
    """None when logical decoding is possible, else why not (naming the setting)."""
    with pg.admin() as conn:
        found = conn.execute("SHOW wal_level").fetchone()
    level = str(found[0]) if found else "?"
    if level != "logical":
        return f"Realtime needs wal_level = logical on the database server (it is {level!r})"
    return None


def _timestamp(raw: str | None) -> str:
    """wal2json's `2026-12-08 05:00:00.123456+00` as Realtime sends it: `...T05:00:00.123Z`."""
    if not raw:
        return ""
    moment = datetime.fromisoformat(raw.replace(" ", "T"))
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def changes(rows: list[dict[str, Any]]) -> list[Change]:
    """wal2json format-version 2 actions (B, I/U/D, C per transaction) as changes, each with
    its transaction's commit time."""
    found: list[Change] = []
    pending: list[dict[str, Any]] = []
    begun: str | None = None
    for action in rows:
        kind = action.get("action")
        if kind == "B":
            pending, begun = [], action.get("timestamp")
        elif kind in _KINDS:
            pending.append(action)
        elif kind == "C":
            stamp = _timestamp(action.get("timestamp") or begun)
            for item in pending:
                new = {c["name"]: c.get("value") for c in item.get("columns", [])}
                old = {c["name"]: c.get("value") for c in item.get("identity", [])}
                found.append(
                    Change(
                        item["schema"],
                        item["table"],
                        _KINDS[item["action"]],
                        new if item["action"] != "D" else None,
                        old if item["action"] != "I" else None,
                        stamp,
                    )
                )
            pending = []
    return found


class Feed:
    def __init__(self, pg: PostgresServer, dbname: str, slot: str) -> None:
        self.pg, self.dbname, self.slot = pg, dbname, slot
        self._listeners: dict[int, Listener] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"realtime-{dbname}", daemon=True)

    def start(self) -> None:
        """Start reading; returns once the slot exists (changes from now on are seen)."""
        self._thread.start()
        self._ready.wait(30)
        if self._error or not self._ready.is_set():
            raise FeedError(self._error or "the change feed did not start")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners[listener.key] = listener

    def remove(self, listener: Listener) -> bool:
        """True when nobody listens any more."""
        with self._lock:
            self._listeners.pop(listener.key, None)
            return not self._listeners

    def _run(self) -> None:
        try:
            with self.pg.admin(self.dbname) as conn:
                try:
                    conn.execute(
                        "SELECT pg_create_logical_replication_slot(%s, 'wal2json', true)",
                        (self.slot,),
                    )
                except psycopg.Error as e:
                    self._error = _why(e)
                    return
                finally:
                    self._ready.set()
                while not self._stop.wait(POLL_S):
                    rows = conn.execute(
                        "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL"
                        + ", %s" * len(_OPTIONS)
                        + ")",
                        (self.slot, *_OPTIONS),
                    ).fetchall()
                    if rows:
                        self._dispatch(conn, changes([json.loads(str(r[0])) for r in rows]))
        except psycopg.Error as e:
            log.warning("realtime feed of %s ended: %s", self.dbname, str(e).strip())
        finally:
            self._ready.set()

    def _dispatch(self, conn: psycopg.Connection[Any], found: list[Change]) -> None:
        published = realtime_access.published(conn)
        with self._lock:
            listeners = list(self._listeners.values())
        tables = realtime_access.Tables(conn)
        for change in found:
            if (change.schema, change.table) not in published.tables:
                continue
            if change.kind not in published.actions:
                continue
            data = tables.payload(change)
            for listener in listeners:
                ids = tables.deliverable(change, data, listener)
                if ids:
                    listener.send(ids, data)


def _why(e: psycopg.Error) -> str:
    text = str(e).strip()
    if "wal_level" in text:
        return "Realtime needs wal_level = logical on the database server: " + text
    if "wal2json" in text:
        return "Realtime needs the wal2json output plugin (Debian: postgresql-15-wal2json): " + text
    return "Realtime could not start its change feed: " + text


class Feeds:
    """The feeds of every project database, made on the first join and ended with the last
    leave."""

    def __init__(self, pg: PostgresServer, prefix: str) -> None:
        self.pg, self.prefix = pg, prefix
        self._feeds: dict[str, Feed] = {}
        self._lock = threading.Lock()
        self._made = 0

    def subscribe(self, dbname: str, listener: Listener) -> None:
        with self._lock:
            feed = self._feeds.get(dbname)
            if feed is not None and not feed.alive:  # its connection ended (a restart, a drop)
                feed = None
            if feed is None:
                self._made += 1
                feed = Feed(self.pg, dbname, f"{self.prefix}_{self._made}")
                feed.start()
                self._feeds[dbname] = feed
            feed.add(listener)

    def unsubscribe(self, dbname: str, listener: Listener) -> None:
        with self._lock:
            feed = self._feeds.get(dbname)
            if feed is not None and feed.remove(listener):
                del self._feeds[dbname]
                feed.stop()

    def close(self) -> None:
        with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            feed.stop()
