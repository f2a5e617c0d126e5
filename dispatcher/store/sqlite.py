"""The embedded store: one SQLite file, the stdlib `sqlite3`.

Thread-safe: the dispatcher calls from the API threads and its workers at once. Each call
borrows a connection from a small pool (at most `pool_size`, each used by one thread at a
time). The file is in WAL mode, so readers never wait for the writer; every write is one
`BEGIN IMMEDIATE` transaction, which takes SQLite's single write lock up front (writers queue
on `busy_timeout` instead of failing halfway), and that lock is what makes `migrate()` and
`claim()` safe between threads and between processes sharing the file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tenacity

from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.store.base import NewEvent, Store
from dispatcher.store.schema import (
    REQUEUEABLE,
    TIMESTAMP_FIELDS,
    Clock,
    InvalidTransition,
    StoreError,
    UnknownDeployment,
    check_limit,
    check_update,
    deployment_from_row,
    event_from_row,
    iso,
    key_conflict,
    load_migrations,
    new_deployment_id,
    payload_json,
    pending,
    split_sqlite_script,
    storable,
    submission,
    utc_now,
)

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def _is_busy(e: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED (any extended code): another connection holds the lock."""
    code = getattr(e, "sqlite_errorcode", None)
    return (
        isinstance(e, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    )


_CANDIDATE = """
SELECT d.id FROM deployments AS d
WHERE d.status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM deployments AS r
                  WHERE r.project_id = d.project_id AND r.status = 'running')
ORDER BY d.queue_seq
LIMIT 1
"""
_REQUEUEABLE_SQL = ", ".join(f"'{s.value}'" for s in REQUEUEABLE)


class _Pool:
    """At most `size` connections, each lent to one thread at a time."""

    def __init__(
        self,
        path: Path,
        size: int,
        busy_timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._path = path
        self._size = size
        self._busy_timeout_s = busy_timeout_s
        self._sleep = sleep
        self._idle: list[sqlite3.Connection] = []
        self._made = 0
        self._closed = False
        self._cond = threading.Condition()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # autocommit; writes open their own BEGIN IMMEDIATE
            check_same_thread=False,  # lent to one thread at a time, closed by any
        )
        try:
            self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        mode = self._enter_wal(conn)
        if mode != "wal":
            raise StoreError(
                f"SQLite could not put {self._path} in WAL mode (got {mode!r}): "
                "use a local file system, or FORGE_DATABASE_URL=postgresql://..."
            )
        conn.execute("PRAGMA synchronous = NORMAL")  # durable across a process crash
        conn.execute("PRAGMA foreign_keys = ON")

    def _enter_wal(self, conn: sqlite3.Connection) -> str:
        """Switch the file to WAL (a no-op once it is). On a new file the switch needs an
        exclusive lock that SQLite does not wait for through `busy_timeout` when another
        process is opening the same file, so a busy answer is retried with a bounded
        exponential backoff, up to the busy timeout; past it, the error names the file."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_busy),
            wait=tenacity.wait_random_exponential(multiplier=0.002, max=0.1),
            stop=tenacity.stop_after_delay(self._busy_timeout_s),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as e:
            if not _is_busy(e):
                raise
            raise StoreError(
                f"SQLite database {self._path} stayed locked by another process for more than "
                f"{self._busy_timeout_s:g} s while switching it to WAL mode: is another program "
                "holding a transaction on it?"
            ) from e
        return str(mode).lower()

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError(f"the SQLite store {self._path} is closed")
                if self._idle:
                    conn: sqlite3.Connection | None = self._idle.pop()
                    break
                if self._made < self._size:
                    self._made += 1
                    conn = None
                    break
                self._cond.wait()
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._cond:
                    self._made -= 1
                    self._cond.notify()
                raise
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._cond:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            self._cond.notify_all()


class SQLiteStore(Store):
    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock = utc_now,
        pool_size: int = 8,
        busy_timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._pool = _Pool(self.path, pool_size, busy_timeout_s, sleep)

    # -- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding SQLite's write lock from its first statement."""
        with self._pool.connection() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise self._locked(e) from e
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _locked(self, e: sqlite3.OperationalError) -> Exception:
        if _is_busy(e):
            return StoreError(
                f"SQLite database {self.path} stayed locked by another writer past the busy "
                "timeout: is another process holding a long transaction on it?"
            )
        return e

    def _now(self) -> str:
        return iso(self._clock())

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
            applied = {
                int(r["version"]): str(r["checksum"])
                for r in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            for migration in pending(load_migrations("sqlite"), applied):
                for statement in split_sqlite_script(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, self._now()),
                )

    def close(self) -> None:
        self._pool.close()

    # -- deployments ------------------------------------------------------------------------
    def submit(
        self,
        project_id: str,
        project_name: str,
        build_dir: str,
        idempotency_key: str | None,
        action: str = "deploy",
        owner: str | None = None,
    ) -> tuple[Deployment, bool]:
        digest = submission(project_id, project_name, build_dir, idempotency_key, action, owner)
        with self._write() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT * FROM deployments WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    if row["request_hash"] != digest:
                        raise key_conflict(idempotency_key, row["id"])
                    return deployment_from_row(row), False
            now = self._now()
            rows = conn.execute(
                "INSERT INTO deployments (id, seq, queue_seq, project_id, project_name,"
                " build_dir, action, status, idempotency_key, request_hash, owner, created_at,"
                " updated_at) VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM deployments),"
                " (SELECT coalesce(max(queue_seq), 0) + 1 FROM deployments),"
                " ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) RETURNING *",
                (
                    new_deployment_id(),
                    project_id,
                    project_name,
                    build_dir,
                    action,
                    idempotency_key,
                    digest,
                    owner,
                    now,
                    now,
                ),
            ).fetchall()
        return deployment_from_row(rows[0]), True

    def get(self, deployment_id: str) -> Deployment | None:
        rows = self._read("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
        return deployment_from_row(rows[0]) if rows else None

    def list_deployments(self, project_id: str | None = None, limit: int = 100) -> list[Deployment]:
        check_limit(limit)
        if project_id is None:
            rows = self._read("SELECT * FROM deployments ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                "SELECT * FROM deployments WHERE project_id = ? ORDER BY seq DESC LIMIT ?",
                (project_id, limit),
            )
        return [deployment_from_row(r) for r in rows]

    def claim(self, worker: str, max_running: int) -> Deployment | None:
        if max_running < 1:
            raise ValueError(f"max_running must be at least 1, got {max_running}")
        with self._write() as conn:
            (running,) = conn.execute(
                "SELECT count(*) FROM deployments WHERE status = 'running'"
            ).fetchone()
            if running >= max_running:
                return None
            candidate = conn.execute(_CANDIDATE).fetchone()
            if candidate is None:
                return None
            now = self._now()
            rows = conn.execute(
                "UPDATE deployments SET status = 'running', attempt = attempt + 1,"
                " started_at = ?, updated_at = ?, claimed_by = ?, error = NULL,"
                " exit_code = NULL, finished_at = NULL WHERE id = ? RETURNING *",
                (now, now, worker, candidate["id"]),
            ).fetchall()
        return deployment_from_row(rows[0])

    def update(self, deployment_id: str, **fields: Any) -> Deployment:
        values = check_update(fields, no_nul=False)
        columns = sorted(values)  # names checked against UPDATABLE: safe to interpolate
        params: list[Any] = [_to_sqlite(c, values[c]) for c in columns]
        assignments = "".join(f"{c} = ?, " for c in columns)
        try:
            with self._write() as conn:
                rows = conn.execute(
                    f"UPDATE deployments SET {assignments}updated_at = ? WHERE id = ? RETURNING *",
                    (*params, self._now(), deployment_id),
                ).fetchall()
        except sqlite3.IntegrityError as e:
            if e.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE":
                raise InvalidTransition(
                    f"deployment {deployment_id} cannot run: its project already has a running "
                    "deployment"
                ) from e
            raise
        if not rows:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        return deployment_from_row(rows[0])

    def requeue(self, deployment_id: str) -> Deployment:
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE deployments SET status = 'queued',"
                " queue_seq = (SELECT max(queue_seq) + 1 FROM deployments), updated_at = ?,"
                " error = NULL, exit_code = NULL, finished_at = NULL, cancel_requested = 0,"
                f" claimed_by = NULL WHERE id = ? AND status IN ({_REQUEUEABLE_SQL})"
                " RETURNING *",
                (self._now(), deployment_id),
            ).fetchall()
            if not rows:
                current = conn.execute(
                    "SELECT status FROM deployments WHERE id = ?", (deployment_id,)
                ).fetchone()
        if rows:
            return deployment_from_row(rows[0])
        if current is None:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        raise InvalidTransition(
            f"deployment {deployment_id} is {current['status']}: only "
            f"{', '.join(s.value for s in REQUEUEABLE)} deployments can be queued again"
        )

    def running(self) -> list[Deployment]:
        rows = self._read(
            "SELECT * FROM deployments WHERE status = ? ORDER BY seq", (Status.RUNNING.value,)
        )
        return [deployment_from_row(r) for r in rows]

    # -- events -----------------------------------------------------------------------------
    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        if not events:
            return []
        with self._write() as conn:
            counter = conn.execute(
                "UPDATE deployments SET last_event_id = last_event_id + ? WHERE id = ?"
                " RETURNING last_event_id",
                (len(events), deployment_id),
            ).fetchall()
            if not counter:
                raise UnknownDeployment(f"no deployment {deployment_id}")
            first = int(counter[0][0]) - len(events) + 1
            stored: list[StoredEvent] = []
            rows: list[tuple[Any, ...]] = []
            for i, event in enumerate(events):
                payload, text = payload_json(event.payload, no_nul=False)
                kept = StoredEvent(
                    deployment_id=deployment_id,
                    id=first + i,
                    attempt=event.attempt,
                    type=storable(event.type, no_nul=False),
                    ts=storable(event.ts, no_nul=False),
                    payload=payload,
                    runner_seq=event.runner_seq,
                )
                stored.append(kept)
                rows.append(
                    (
                        deployment_id,
                        kept.id,
                        kept.attempt,
                        kept.type,
                        kept.ts,
                        text,
                        kept.runner_seq,
                    )
                )
            conn.executemany(
                "INSERT INTO events (deployment_id, id, attempt, type, ts, payload, runner_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return stored

    def events(
        self, deployment_id: str, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEvent]:
        check_limit(limit)
        rows = self._read(
            "SELECT * FROM events WHERE deployment_id = ? AND id > ? ORDER BY id LIMIT ?",
            (deployment_id, after_id, limit),
        )
        return [event_from_row(r) for r in rows]

    # -- sealed secrets ---------------------------------------------------------------------
    def put_sealed(self, project_id: str, key: str, sealed: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO sealed_secrets (project_id, key, sealed, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (project_id, key)"
                " DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                (project_id, key, sealed, self._now()),
            )

    def get_sealed(self, project_id: str) -> dict[str, str]:
        rows = self._read(
            "SELECT key, sealed FROM sealed_secrets WHERE project_id = ? ORDER BY key",
            (project_id,),
        )
        return {str(r["key"]): str(r["sealed"]) for r in rows}

    # -- hook replay protection -------------------------------------------------------------
    def remember_signature(self, signature: str, expires_at: float) -> bool:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM hook_signatures WHERE expires_at < ?", (self._clock().timestamp(),)
            )
            cursor = conn.execute(
                "INSERT INTO hook_signatures (signature, expires_at) VALUES (?, ?)"
                " ON CONFLICT (signature) DO NOTHING",
                (signature, expires_at),
            )
            return cursor.rowcount == 1


def _to_sqlite(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in TIMESTAMP_FIELDS:
        return iso(value)
    if column == "health":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if column == "cancel_requested":
        return int(value)
    return value
