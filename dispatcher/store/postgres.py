"""The shared store: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

Several dispatcher replicas may use one database. What keeps them apart:
- `migrate()` runs in one transaction under `pg_advisory_xact_lock(MIGRATE_LOCK)`: a second
  replica waits, then finds the migrations recorded and applies nothing.
- `claim()` runs in one transaction under `pg_advisory_xact_lock(CLAIM_LOCK)`, then picks the
  oldest claimable row with `FOR UPDATE SKIP LOCKED`. The lock serialises claims across
  replicas, which is what makes "fewer than max_running run" and "none of this project runs"
  race-free: row locks alone cannot, because two claimers would lock two *different* queued
  rows and each count the same running set (write skew). A claim is a few index lookups, so
  one at a time costs nothing measurable; SKIP LOCKED still steps over rows another
  transaction holds (a cancel or requeue in flight) instead of waiting on them.
- the partial unique index `deployments_one_running_per_project` refuses a second running
  deployment of a project whatever the code path (belt and braces).
- `append_events()` bumps the deployment's `last_event_id` (a row lock: appends to one
  deployment queue up, appends to others do not) and streams the batch in with `COPY`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.store.base import NewEvent, Store
from dispatcher.store.schema import (
    CLAIM_LOCK,
    MIGRATE_LOCK,
    REQUEUEABLE,
    Clock,
    InvalidTransition,
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
    redact_url,
    storable,
    submission,
    utc_now,
)

log = logging.getLogger(__name__)

Conn = psycopg.Connection[DictRow]

_CANDIDATE = """
SELECT d.id FROM deployments AS d
WHERE d.status = 'queued'
  AND NOT EXISTS (SELECT 1 FROM deployments AS r
                  WHERE r.project_id = d.project_id AND r.status = 'running')
ORDER BY d.queue_seq
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
_REQUEUEABLE = [s.value for s in REQUEUEABLE]
_CLAIM_LOCK_TIMEOUT_MS = 10_000
_COPY_EVENTS = "COPY events (deployment_id, id, attempt, type, ts, payload, runner_seq) FROM STDIN"


class PostgresStore(Store):
    def __init__(
        self,
        conninfo: str,
        *,
        clock: Clock = utc_now,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._clock = clock
        self._where = redact_url(conninfo)
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            connection_class=psycopg.Connection[DictRow],
            kwargs={
                "autocommit": True,  # each method opens its own transaction block
                "row_factory": dict_row,
                "connect_timeout": max(1, int(connect_timeout_s)),
                "application_name": "forge-dispatcher",
            },
            min_size=min_size,
            max_size=max_size,
            check=ConnectionPool.check_connection,
            name="forge-dispatcher",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as e:
            self._pool.close()
            raise StoreError(
                f"PostgreSQL at {self._where} accepted no connection within "
                f"{connect_timeout_s:g} s ({_why_not(conninfo, connect_timeout_s)}): is it "
                "running, and are FORGE_DATABASE_URL's host, port, user, password and database "
                "right?"
            ) from e

    # -- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[Conn]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[DictRow]:
        with self._pool.connection() as conn:
            return conn.execute(query, params).fetchall()

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL)"
            )
            applied = {
                int(r["version"]): str(r["checksum"])
                for r in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            for migration in pending(load_migrations("postgres"), applied):
                try:
                    conn.execute(migration.sql.encode())  # several statements, no parameters
                except psycopg.Error as e:
                    raise StoreError(
                        f"PostgreSQL migration {migration.version} ({migration.name}) failed "
                        f"on {self._where}: {e}"
                    ) from e
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (%s, %s, %s, %s)",
                    (migration.version, migration.name, migration.checksum, self._clock()),
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
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute(
                "INSERT INTO deployments (id, project_id, project_name, build_dir, action,"
                " status, idempotency_key, request_hash, owner, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s)"
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
            ).fetchone()
            if row is not None:
                return deployment_from_row(row), True
            # The key is taken (perhaps by a concurrent submit that has just committed: this
            # statement's snapshot sees it under READ COMMITTED).
            row = conn.execute(
                "SELECT * FROM deployments WHERE idempotency_key = %s", (idempotency_key,)
            ).fetchone()
        if row is None:
            raise StoreError(f"Idempotency-Key {idempotency_key!r} conflicted but has no row")
        if row["request_hash"] != digest:
            raise key_conflict(idempotency_key, row["id"])
        return deployment_from_row(row), False

    def get(self, deployment_id: str) -> Deployment | None:
        rows = self._read("SELECT * FROM deployments WHERE id = %s", (deployment_id,))
        return deployment_from_row(rows[0]) if rows else None

    def list_deployments(self, project_id: str | None = None, limit: int = 100) -> list[Deployment]:
        check_limit(limit)
        if project_id is None:
            rows = self._read("SELECT * FROM deployments ORDER BY seq DESC LIMIT %s", (limit,))
        else:
            rows = self._read(
                "SELECT * FROM deployments WHERE project_id = %s ORDER BY seq DESC LIMIT %s",
                (project_id, limit),
            )
        return [deployment_from_row(r) for r in rows]

    def claim(self, worker: str, max_running: int) -> Deployment | None:
        if max_running < 1:
            raise ValueError(f"max_running must be at least 1, got {max_running}")
        try:
            with self._transaction() as conn:
                # A replica stuck inside its claim must not stall the others for good.
                conn.execute(f"SET LOCAL lock_timeout = '{_CLAIM_LOCK_TIMEOUT_MS}ms'")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
                # Each statement below takes a fresh snapshot (READ COMMITTED), taken after
                # the lock: it sees every claim committed before ours.
                counted = conn.execute(
                    "SELECT count(*) AS n FROM deployments WHERE status = 'running'"
                ).fetchone()
                if counted is None or counted["n"] >= max_running:
                    return None
                candidate = conn.execute(_CANDIDATE).fetchone()
                if candidate is None:
                    return None
                # The clock is read after the candidate was chosen: started_at then follows
                # the commit of whatever made it claimable (its project's previous deploy).
                now = self._clock()
                row = conn.execute(
                    "UPDATE deployments SET status = 'running', attempt = attempt + 1,"
                    " started_at = %s, updated_at = %s, claimed_by = %s, error = NULL,"
                    " exit_code = NULL, finished_at = NULL WHERE id = %s RETURNING *",
                    (now, now, worker, candidate["id"]),
                ).fetchone()
        except errors.UniqueViolation as e:
            # Only a deployment set running outside claim() can get here; the index held.
            log.warning("claim found a project already running (set outside claim): %s", e)
            return None
        except errors.LockNotAvailable:
            log.warning(
                "claim waited %d ms for another replica's claim: skipped this round",
                _CLAIM_LOCK_TIMEOUT_MS,
            )
            return None
        assert row is not None  # the candidate is locked by us
        return deployment_from_row(row)

    def update(self, deployment_id: str, **fields: Any) -> Deployment:
        values = check_update(fields, no_nul=True)
        columns = sorted(values)
        assignments = [
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in columns
        ]
        assignments.append(sql.SQL("updated_at = {}").format(sql.Placeholder()))
        query = sql.SQL("UPDATE deployments SET {} WHERE id = {} RETURNING *").format(
            sql.SQL(", ").join(assignments), sql.Placeholder()
        )
        params = [
            Jsonb(values[c]) if c == "health" and values[c] is not None else values[c]
            for c in columns
        ]
        try:
            with self._transaction() as conn:
                row = conn.execute(query, (*params, self._clock(), deployment_id)).fetchone()
        except errors.UniqueViolation as e:
            raise InvalidTransition(
                f"deployment {deployment_id} cannot run: its project already has a running "
                "deployment"
            ) from e
        if row is None:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        return deployment_from_row(row)

    def requeue(self, deployment_id: str) -> Deployment:
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE deployments SET status = 'queued',"
                " queue_seq = nextval('deployments_queue_seq'), updated_at = %s,"
                " error = NULL, exit_code = NULL, finished_at = NULL, cancel_requested = false,"
                " claimed_by = NULL WHERE id = %s AND status = ANY(%s) RETURNING *",
                (self._clock(), deployment_id, _REQUEUEABLE),
            ).fetchone()
            current = (
                None
                if row is not None
                else conn.execute(
                    "SELECT status FROM deployments WHERE id = %s", (deployment_id,)
                ).fetchone()
            )
        if row is not None:
            return deployment_from_row(row)
        if current is None:
            raise UnknownDeployment(f"no deployment {deployment_id}")
        raise InvalidTransition(
            f"deployment {deployment_id} is {current['status']}: only "
            f"{', '.join(_REQUEUEABLE)} deployments can be queued again"
        )

    def running(self) -> list[Deployment]:
        rows = self._read(
            "SELECT * FROM deployments WHERE status = %s ORDER BY seq", (Status.RUNNING.value,)
        )
        return [deployment_from_row(r) for r in rows]

    # -- events -----------------------------------------------------------------------------
    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        if not events:
            return []
        stored: list[StoredEvent] = []
        with self._transaction() as conn:
            counter = conn.execute(
                "UPDATE deployments SET last_event_id = last_event_id + %s WHERE id = %s"
                " RETURNING last_event_id",
                (len(events), deployment_id),
            ).fetchone()
            if counter is None:
                raise UnknownDeployment(f"no deployment {deployment_id}")
            first = int(counter["last_event_id"]) - len(events) + 1
            rows: list[tuple[Any, ...]] = []
            for i, event in enumerate(events):
                payload, text = payload_json(event.payload, no_nul=True)
                stored_event = StoredEvent(
                    deployment_id=deployment_id,
                    id=first + i,
                    attempt=event.attempt,
                    type=storable(event.type, no_nul=True),
                    ts=storable(event.ts, no_nul=True),
                    payload=payload,
                    runner_seq=event.runner_seq,
                )
                stored.append(stored_event)
                rows.append(
                    (
                        deployment_id,
                        stored_event.id,
                        stored_event.attempt,
                        stored_event.type,
                        stored_event.ts,
                        text,
                        stored_event.runner_seq,
                    )
                )
            # COPY, not executemany: one round trip of rows, ~2.5x the events/s here.
            with conn.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
                for row in rows:
                    copy.write_row(row)
        return stored

    def events(
        self, deployment_id: str, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEvent]:
        check_limit(limit)
        rows = self._read(
            "SELECT * FROM events WHERE deployment_id = %s AND id > %s ORDER BY id LIMIT %s",
            (deployment_id, after_id, limit),
        )
        return [event_from_row(r) for r in rows]

    # -- sealed secrets ---------------------------------------------------------------------
    def put_sealed(self, project_id: str, key: str, sealed: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO sealed_secrets (project_id, key, sealed, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (project_id, key)"
                " DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                (project_id, key, sealed, self._clock()),
            )

    def get_sealed(self, project_id: str) -> dict[str, str]:
        rows = self._read(
            "SELECT key, sealed FROM sealed_secrets WHERE project_id = %s ORDER BY key",
            (project_id,),
        )
        return {str(r["key"]): str(r["sealed"]) for r in rows}

    # -- hook replay protection -------------------------------------------------------------
    def remember_signature(self, signature: str, expires_at: float) -> bool:
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM hook_signatures WHERE expires_at < %s", (self._clock().timestamp(),)
            )
            cursor = conn.execute(
                "INSERT INTO hook_signatures (signature, expires_at) VALUES (%s, %s)"
                " ON CONFLICT (signature) DO NOTHING",
                (signature, expires_at),
            )
            return cursor.rowcount == 1


def _why_not(conninfo: str, timeout_s: float) -> str:
    """libpq's own reason a connection fails (it names host and user, never the password)."""
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, int(timeout_s))).close()
    except psycopg.Error as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return "a direct connection works now: the server may be overloaded"
