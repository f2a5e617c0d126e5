"""The status mirror's worker: one background thread that reads the dispatcher's deployments
(through the core's front door) and brings the dashboard's rows up to date, never inside a
deploy's path.

Each round looks at the newest `scan_limit` deployments, keeps those the dashboard queued
(`rows.dashboard_row_id`), reads only their new events (`after_id`), and writes the rows whose
version moved. A write that fails with `DashboardDown` ends the round; the next round (after
`poll_s`, or at once when the dispatcher reports a status change) starts from what the store
says then, so an outage costs nothing but time: the mirror catches up when the dashboard is
back, and a deploy never waits for it.

A row counts as written only when the dashboard applied it or already holds that version or a
newer one. A refusal (a 4xx: a 404 while the dashboard's API redeploys, a missing column) or a
missing row leaves it unwritten: it is tried again when the deployment next changes, and by
itself after a backoff (`poll_s` doubling up to `resync_s`, the periodic re-sync), on the
injected monotonic `clock`. A finished deployment is looked at until its row is written. Each
distinct refusal is logged once per row at ERROR, naming the status, code and message; its
repeats at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatcher.core.deployments import Deployments
from dispatcher.mirror.rows import Folded, dashboard_row_id, row, version
from dispatcher.mirror.writer import DashboardDown, DashboardRefused, Writer, Written
from dispatcher.model import TERMINAL, Deployment
from runner.masking import Masker

log = logging.getLogger("forge.dispatcher.mirror")


@dataclass
class _Tracked:
    folded: Folded = field(default_factory=Folded)
    sent: int = -1  # the version last sent (held by the dashboard unless retry_at is set)
    settled_at: str | None = None  # updated_at of a terminal deployment fully written
    retry_at: float | None = None  # when an unwritten row is tried again by itself
    failures: int = 0  # refusals in a row: the backoff's exponent
    said: str | None = None  # the last refusal logged for this row


class Mirror:
    def __init__(
        self,
        deployments: Deployments,
        writer: Writer,
        masker: Masker,
        poll_s: float = 1.0,
        scan_limit: int = 200,
        resync_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployments = deployments
        self.writer = writer
        self.masker = masker
        self.poll_s = poll_s
        self.scan_limit = scan_limit
        self.resync_s = resync_s
        self.clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.failed_rounds = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mirror", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.writer.close()

    def status_changed(self, deployment: Deployment) -> None:
        """The dispatcher's status hook: only wakes the worker (never blocks, never fails)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                self.sync_once()
            except Exception:  # the worker must outlive any one round
                self.failed_rounds += 1
                log.exception("status mirror round failed; trying again in %.1f s", self.poll_s)

    def sync_once(self) -> bool:
        """One round; True when every row was brought up to date."""
        self.rounds += 1
        complete = True
        for deployment in reversed(self.deployments.newest(None, limit=self.scan_limit)):
            row_id = dashboard_row_id(deployment)
            if row_id is None:
                continue
            tracked = self._tracked.setdefault(deployment.id, _Tracked())
            if tracked.settled_at == deployment.updated_at:
                continue
            tracked.folded.add(
                self.deployments.events(deployment.id, after=tracked.folded.last_event_id),
                self.masker,
            )
            moved = version(deployment, tracked.folded) > tracked.sent
            due = tracked.retry_at is not None and self.clock() >= tracked.retry_at
            if moved or due:
                try:
                    self._write(deployment, row_id, tracked)
                except DashboardDown as e:
                    self.failed_rounds += 1
                    log.warning("dashboard unavailable (%s); the mirror catches up later", e)
                    return False
            if tracked.retry_at is not None:
                complete = False
            elif deployment.status in TERMINAL:
                tracked.settled_at = deployment.updated_at
        return complete

    def _write(self, deployment: Deployment, row_id: str, tracked: _Tracked) -> None:
        fields = row(deployment, tracked.folded, self.masker)
        try:
            outcome = self.writer.write(row_id, fields)  # DashboardDown: not sent, next round
        except DashboardRefused as e:
            tracked.sent = fields["version"]
            self._unwritten(tracked, f"dashboard refused the row {row_id} of {deployment.id}: {e}")
            return
        tracked.sent = fields["version"]
        if outcome is Written.MISSING:
            self._unwritten(tracked, f"dashboard row {row_id} of {deployment.id} not found")
            return
        tracked.retry_at, tracked.failures, tracked.said = None, 0, None

    def _unwritten(self, tracked: _Tracked, said: str) -> None:
        wait = min(self.resync_s, self.poll_s * 2**tracked.failures)
        tracked.failures += 1
        tracked.retry_at = self.clock() + wait
        level = logging.DEBUG if said == tracked.said else logging.ERROR
        log.log(level, "%s; trying again within %.1f s", said, wait)
        tracked.said = said
