"""The status mirror's worker: one background thread that reads the dispatcher's deployments
(through the core's front door) and brings the dashboard's rows up to date, never inside a
deploy's path.

Each round looks at the newest `scan_limit` deployments, keeps those the dashboard queued
(`rows.dashboard_row_id`), reads only their new events (`after_id`), and writes the rows whose
version moved. A write that fails with `DashboardDown` ends the round; the next round (after
`poll_s`, or at once when the dispatcher reports a status change) starts from what the store
says then, so an outage costs nothing but time: the mirror catches up when the dashboard is
back, and a deploy never waits for it.
"""

from __future__ import annotations

import logging
import threading
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
    written: int = -1  # the version the dashboard holds (or a newer one)
    settled_at: str | None = None  # updated_at of a terminal deployment fully written


class Mirror:
    def __init__(
        self,
        deployments: Deployments,
        writer: Writer,
        masker: Masker,
        poll_s: float = 1.0,
        scan_limit: int = 200,
    ) -> None:
        self.deployments = deployments
        self.writer = writer
        self.masker = masker
        self.poll_s = poll_s
        self.scan_limit = scan_limit
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
            if version(deployment, tracked.folded) > tracked.written:
                try:
                    self._write(deployment, row_id, tracked)
                except DashboardDown as e:
                    self.failed_rounds += 1
                    log.warning("dashboard unavailable (%s); the mirror catches up later", e)
                    return False
            if deployment.status in TERMINAL:
                tracked.settled_at = deployment.updated_at
        return True

    def _write(self, deployment: Deployment, row_id: str, tracked: _Tracked) -> None:
        fields = row(deployment, tracked.folded, self.masker)
        try:
            outcome = self.writer.write(row_id, fields)
        except DashboardRefused as e:
            # A wrong key, table or column: retrying will not help; say so once per change.
            log.error("dashboard refused the row of %s: %s", deployment.id, e)
            outcome = Written.MISSING
        if outcome is Written.MISSING:
            log.warning("dashboard row %s of %s not written", row_id, deployment.id)
        tracked.written = fields["version"]
