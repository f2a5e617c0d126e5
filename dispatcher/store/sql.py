"""The store, written once in SQL for both databases; what differs lives in a `Dialect`
(`dispatcher.store.sqlite`, `dispatcher.store.postgres`): how a connection is lent and a
transaction opened, how values are adapted, how claims and migrations are serialised across
processes, how a batch of events is written.

Queries use `?` placeholders; a dialect whose driver spells them otherwise translates them
(no query here has a `?` or `%` inside a literal). Every method is one short transaction; no row
holds a secret (sealed values live in their own table, opaque without the dispatcher's key).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from dispatcher.model import RETRYABLE, Deployment, Patch, Status, StoredEvent
from dispatcher.store.base import NewEvent, Store
from dispatcher.store.schema import (
    Clock,
    InvalidTransition,
    Migration,
    Row,
    StoreError,
    UnknownDeployment,
    check_limit,
    check_update,
    deployment_from_row,
    event_from_row,
    key_conflict,
    load_migrations,
    new_deployment_id,
    payload_json,
    pending,
    storable,
    submission,
    utc_now,
)

log = logging.getLogger(__name__)

_RETRYABLE_SQL = ", ".join(f"'{s.value}'" for s in sorted(RETRYABLE))
# Only heads (each project's oldest queued deployment) are candidates: the walk skips at most
# the heads of running projects, never the deploys queued behind them.
_CANDIDATE = """
SELECT d.id FROM deployments AS d
WHERE d.status = 'queued' AND d.queue_head = {true}
  AND NOT EXISTS (SELECT 1 FROM deployments AS r
                  WHERE r.project_id = d.project_id AND r.status = 'running')
ORDER BY d.queue_seq
LIMIT 1
"""
EVENT_COLUMNS = ("deployment_id", "id", "attempt", "type", "ts", "payload", "runner_seq")


class Conn(Protocol):
    """A connection as the store uses it: one statement, its rows (or its row count)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...


class Dialect(abc.ABC):
    name: str  # the migrations folder: "sqlite" | "postgres"
    no_nul: bool  # the database refuses U+0000 in text
    timestamp_type: str  # the column type of a moment
    # INSERT INTO deployments: the extra columns and values that number a new row
    seq_columns: str = ""
    seq_values: str = ""
    next_queue_seq: str  # an expression: the queue position after every other
    candidate_lock: str = ""  # appended to the claim's candidate query
    true_sql: str  # boolean literals as the partial indexes on queue_head are written
    false_sql: str

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[Conn]:
        """One write transaction."""

    @abc.abstractmethod
    def read(self) -> AbstractContextManager[Conn]:
        """A connection for reads (autocommit)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        """See `Store.on_connection_lost`; a dialect without a pool of kept connections has
        nothing to tell."""
        del tell  # nothing kept between calls here

    @abc.abstractmethod
    def lock_migrations(self, conn: Conn) -> None:
        """Serialise migrate() across processes, in the transaction write() opened."""

    @abc.abstractmethod
    def lock_claims(self, conn: Conn) -> None:
        """Serialise claim() and every change of the queue's heads across processes, in the
        transaction write() opened."""

    @abc.abstractmethod
    def apply(self, conn: Conn, migration: Migration) -> None: ...

    @abc.abstractmethod
    def value(self, column: str, value: Any) -> Any:
        """A Python value (timestamps as aware datetimes, health as a dict) as the driver
        takes it for `column`."""

    @abc.abstractmethod
    def insert_events(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Rows of EVENT_COLUMNS, the payload as JSON text."""

    @abc.abstractmethod
    def is_unique_violation(self, e: BaseException) -> bool: ...

    @abc.abstractmethod
    def claim_skipped(self, e: BaseException) -> bool:
        """A claim that gave way to another process's (logged; the next round tries again)."""


class SQLStore(Store):
    def __init__(self, dialect: Dialect, *, clock: Clock = utc_now) -> None:
        self.dialect = dialect
        self._clock = clock

    def _now(self) -> Any:
        return self.dialect.value("updated_at", self._clock())

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.dialect.read() as conn:
            return conn.rows(query, params)

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        with self.dialect.write() as conn:
            self.dialect.lock_migrations(conn)
            conn.run(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                f" applied_at {self.dialect.timestamp_type} NOT NULL)"
            )
            applied = {
                int(r["version"]): str(r["checksum"])
                for r in conn.rows("SELECT version, checksum FROM schema_migrations")
            }
            for migration in pending(load_migrations(self.dialect.name), applied):
                self.dialect.apply(conn, migration)
                conn.run(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, self._now()),
                )

    def close(self) -> None:
        self.dialect.close()

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        self.dialect.on_connection_lost(tell)

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
        now = self._now()
        d = self.dialect
        with d.write() as conn:
            d.lock_claims(conn)
            made = conn.rows(
                f"INSERT INTO deployments (id, {d.seq_columns}project_id, project_name,"
                " build_dir, action, status, idempotency_key, request_hash, owner, created_at,"
                f" updated_at) VALUES (?, {d.seq_values}?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
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
            )
            if made:
                self._settle_head(conn, project_id)
                return deployment_from_row(made[0]), True
            # The key is taken (perhaps by a concurrent submit that has just committed: this
            # statement's snapshot sees it).
            taken = conn.rows(
                "SELECT * FROM deployments WHERE idempotency_key = ?", (idempotency_key,)
            )
        if not taken:
            raise StoreError(f"Idempotency-Key {idempotency_key!r} conflicted but has no row")
        if taken[0]["request_hash"] != digest:
            raise key_conflict(idempotency_key, taken[0]["id"])
        return deployment_from_row(taken[0]), False

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
        try:
            with self.dialect.write() as conn:
                self.dialect.lock_claims(conn)
                # Each statement below sees every claim committed before ours.
                (counted,) = conn.rows(
                    "SELECT count(*) AS n FROM deployments WHERE status = 'running'"
                )
                if counted["n"] >= max_running:
                    return None
                candidate = conn.rows(
                    _CANDIDATE.format(true=self.dialect.true_sql) + self.dialect.candidate_lock
                )
                if not candidate:
                    return None
                # The clock is read after the candidate was chosen: started_at then follows
                # the commit of whatever made it claimable (its project's previous deploy).
                now = self._now()
                rows = conn.rows(
                    "UPDATE deployments SET status = 'running', attempt = attempt + 1,"
                    " started_at = ?, updated_at = ?, claimed_by = ?, error = NULL,"
                    " exit_code = NULL, finished_at = NULL WHERE id = ? RETURNING *",
                    (now, now, worker, candidate[0]["id"]),
                )
                self._settle_head(conn, rows[0]["project_id"])
        except Exception as e:
            if self.dialect.is_unique_violation(e):
                # Only a deployment set running outside claim() can get here; the index held.
                log.warning("claim found a project already running (set outside claim): %s", e)
                return None
            if self.dialect.claim_skipped(e):
                log.warning("claim gave way to another replica's claim: skipped this round")
                return None
            raise
        return deployment_from_row(rows[0])

    def update(self, deployment_id: str, patch: Patch) -> Deployment:
        values = check_update(patch.fields(), no_nul=self.dialect.no_nul)
        columns = sorted(values)  # names checked against UPDATABLE: safe to interpolate
        assignments = "".join(f"{c} = ?, " for c in columns)
        params = [self.dialect.value(c, values[c]) for c in columns]
        moves = "status" in values  # in or out of the queue, or a project's run ending
        try:
            with self.dialect.write() as conn:
                if moves:
                    self.dialect.lock_claims(conn)
                rows = conn.rows(
                    f"UPDATE deployments SET {assignments}updated_at = ? WHERE id = ? RETURNING *",
                    (*params, self._now(), deployment_id),
                )
                if moves and rows:
                    self._settle_head(conn, rows[0]["project_id"])
        except Exception as e:
            if self.dialect.is_unique_violation(e):
                raise InvalidTransition(
                    f"deployment {deployment_id} cannot run: its project already has a running "
                    "deployment"
                ) from e
            raise
        if not rows:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        return deployment_from_row(rows[0])

    def requeue(self, deployment_id: str) -> Deployment:
        with self.dialect.write() as conn:
            self.dialect.lock_claims(conn)
            rows = conn.rows(
                "UPDATE deployments SET status = 'queued',"
                f" queue_seq = {self.dialect.next_queue_seq}, updated_at = ?,"
                " error = NULL, exit_code = NULL, finished_at = NULL, cancel_requested = ?,"
                f" claimed_by = NULL WHERE id = ? AND status IN ({_RETRYABLE_SQL})"
                " RETURNING *",
                (self._now(), self.dialect.value("cancel_requested", False), deployment_id),
            )
            if rows:
                self._settle_head(conn, rows[0]["project_id"])
            current = (
                []
                if rows
                else conn.rows("SELECT status FROM deployments WHERE id = ?", (deployment_id,))
            )
        if rows:
            return deployment_from_row(rows[0])
        if not current:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        raise InvalidTransition(
            f"deployment {deployment_id} is {current[0]['status']}: only "
            f"{', '.join(sorted(s.value for s in RETRYABLE))} deployments can be queued again"
        )

    def _settle_head(self, conn: Conn, project_id: str) -> None:
        """Mark the project's oldest queued deployment, and only it, as its queue head (run
        after every change that moves a deployment of the project into, out of or within the
        queue, under the claims lock)."""
        d = self.dialect
        head = conn.rows(
            "SELECT id, queue_head FROM deployments WHERE project_id = ? AND status = 'queued'"
            " ORDER BY queue_seq LIMIT 1",
            (project_id,),
        )
        keep = head[0]["id"] if head else ""
        conn.run(
            f"UPDATE deployments SET queue_head = {d.false_sql}"
            f" WHERE project_id = ? AND queue_head = {d.true_sql} AND id <> ?",
            (project_id, keep),
        )
        if head and not head[0]["queue_head"]:
            conn.run(f"UPDATE deployments SET queue_head = {d.true_sql} WHERE id = ?", (keep,))

    def running(self) -> list[Deployment]:
        rows = self._read(
            "SELECT * FROM deployments WHERE status = ? ORDER BY seq", (Status.RUNNING.value,)
        )
        return [deployment_from_row(r) for r in rows]

    # -- events -----------------------------------------------------------------------------
    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        if not events:
            return []
        no_nul = self.dialect.no_nul
        with self.dialect.write() as conn:
            counter = conn.rows(
                "UPDATE deployments SET last_event_id = last_event_id + ? WHERE id = ?"
                " RETURNING last_event_id",
                (len(events), deployment_id),
            )
            if not counter:
                raise UnknownDeployment(f"no deployment {deployment_id}")
            first = int(counter[0]["last_event_id"]) - len(events) + 1
            stored: list[StoredEvent] = []
            rows: list[tuple[Any, ...]] = []
            for i, event in enumerate(events):
                payload, text = payload_json(event.payload, no_nul=no_nul)
                kept = StoredEvent(
                    deployment_id=deployment_id,
                    id=first + i,
                    attempt=event.attempt,
                    type=storable(event.type, no_nul=no_nul),
                    ts=storable(event.ts, no_nul=no_nul),
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
            self.dialect.insert_events(conn, rows)
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
        with self.dialect.write() as conn:
            conn.run(
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
        with self.dialect.write() as conn:
            conn.run(
                "DELETE FROM hook_signatures WHERE expires_at < ?", (self._clock().timestamp(),)
            )
            added = conn.run(
                "INSERT INTO hook_signatures (signature, expires_at) VALUES (?, ?)"
                " ON CONFLICT (signature) DO NOTHING",
                (signature, expires_at),
            )
            return added == 1
