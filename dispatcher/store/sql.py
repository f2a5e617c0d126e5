"""The store, written once in SQL for both databases; what differs lives in a `Dialect`
(`dispatcher.store.sqlite`, `dispatcher.store.postgres`): how a connection is lent and a
transaction opened, how values are adapted, how claims and migrations are serialised across
processes, how a batch of events is written.

Queries use `?` placeholders; a dialect whose driver spells them otherwise translates them
(no query here has a `?` or `%` inside a literal). Every method is one short transaction; no row
holds a secret (sealed values live in their own table, opaque without the dispatcher's key).

A driver's error leaves the store through one place, `SQLStore._mapped`: an outage (the
dialect's `unavailable` says which errors are one) becomes the core's `StoreUnavailable`,
chained to the driver's; any other error goes on as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from dispatcher.core.errors import (
    InvalidTransition,
    StoreError,
    StoreUnavailable,
    UnknownDeployment,
)
from dispatcher.core.ports import NewEvent, Store
from dispatcher.model import RETRYABLE, Deployment, Patch, Status, StoredEvent
from dispatcher.store.dialect import Conn, Dialect
from dispatcher.store.schema import (
    Clock,
    Row,
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


class SQLStore(Store):
    def __init__(self, dialect: Dialect, *, clock: Clock = utc_now) -> None:
        self.dialect = dialect
        self._clock = clock

    def _now(self) -> Any:
        return self.dialect.value("updated_at", self._clock())

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """The one place a driver's error becomes the core's (see the module's docstring)."""
        try:
            yield
        except StoreUnavailable:
            raise
        except Exception as e:
            why = self.dialect.unavailable(e)
            if why is None:
                raise
            raise StoreUnavailable(why) from e

    @contextmanager
    def _write(self) -> Iterator[Conn]:
        with self._mapped(), self.dialect.write() as conn:
            yield conn

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._mapped(), self.dialect.read() as conn:
            return conn.rows(query, params)

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> None:
        with self._write() as conn:
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
        def told(error: BaseException) -> None:
            why = self.dialect.unavailable(error)
            if why is not None:
                tell(StoreUnavailable(why))

        self.dialect.on_connection_lost(told)

    # -- deployments ------------------------------------------------------------------------
    def submit(
        self,
        project_id: str,
        project_name: str,
        build_dir: str,
        idempotency_key: str | None,
        action: str = "deploy",
        owner: str | None = None,
        exposure_policy: str | None = None,
    ) -> tuple[Deployment, bool]:
        digest = submission(
            project_id, project_name, build_dir, idempotency_key, action, owner, exposure_policy
        )
        now = self._now()
        d = self.dialect
        with self._write() as conn:
            d.lock_claims(conn)
            made = conn.rows(
                f"INSERT INTO deployments (id, {d.seq_columns}project_id, project_name,"
                " build_dir, action, status, idempotency_key, request_hash, owner,"
                " exposure_policy, created_at, updated_at)"
                f" VALUES (?, {d.seq_values}?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)"
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
                    exposure_policy,
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
        with self._mapped():
            return self._claim(worker, max_running)

    def _claim(self, worker: str, max_running: int) -> Deployment | None:
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
            with self._write() as conn:
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
        with self._write() as conn:
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
        with self._write() as conn:
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
        with self._write() as conn:
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
        with self._write() as conn:
            conn.run(
                "DELETE FROM hook_signatures WHERE expires_at < ?", (self._clock().timestamp(),)
            )
            added = conn.run(
                "INSERT INTO hook_signatures (signature, expires_at) VALUES (?, ?)"
                " ON CONFLICT (signature) DO NOTHING",
                (signature, expires_at),
            )
            return added == 1
