"""The front door to the dispatcher's core: every state change of a deployment, and every read
the adapters make, go through `Deployments`. The HTTP API, the pages, the CLI's server side and
the status mirror hold one; none of them touches the store.

State changes, each written here once:

- `submit` (queued), `teardown` (a teardown queued), `retry` (queued again), `cancel` (a flag;
  a queued one ends at once), `claim` (running) — the adapters' commands and the queue's;
- `record` (events stored, then published live), `apply` (what the events say: step, URLs,
  health, a sealed value) — an attempt's progress;
- `conclude(deployment, outcome)`, the one way a deployment ends: its `status` event appended
  and published, its row updated, the listeners (callbacks, the mirror) told. What the ending
  is was decided before, by the pure `core.status.outcome`.

Every status change is told to the listeners (`listen`). The errors are the core's own
(`core.errors`): `UnknownDeployment`, `Refused`, `Conflict`, `BuildDirError`, and
`StoreUnavailable` while the store is away. `waiting(watch)` gives the same front door over the
store as background work uses it, each call waiting out an outage (`core.waiting`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from dispatcher.core.builds import resolve_build_dir
from dispatcher.core.errors import StoreUnavailable, UnknownDeployment
from dispatcher.core.hub import EventHub, follow_batches, stored_events
from dispatcher.core.metrics import METRICS, Metrics
from dispatcher.core.outages import StoreWatch
from dispatcher.core.policy import Action, check
from dispatcher.core.ports import NewEvent, Store
from dispatcher.core.status import CancelledUnlaunched, Change, Outcome, Sealed, outcome
from dispatcher.core.waiting import WaitingStore
from dispatcher.model import Deployment, Patch, Status, StoredEvent
from runner.events import EventType, utc_now

Listener = Callable[[Deployment], None]


class Queue(Protocol):
    """What the front door asks of this replica's workers (`core.workers.Workers`)."""

    def wake(self) -> None:
        """A deployment was queued: let the workers look."""

    def stop_running(self, deployment_id: str) -> None:
        """A running deployment's cancel was requested: stop its runner, if it runs here."""


class _NoWorkers:
    """A front door with no workers of its own (a read-only view, a test's idle core)."""

    def wake(self) -> None:
        pass

    def stop_running(self, deployment_id: str) -> None:
        pass


class Deployments:
    def __init__(
        self,
        store: Store,
        *,
        builds_root: Path,
        hub: EventHub | None = None,
        listeners: Sequence[Listener] = (),
        now: Callable[[], str] = utc_now,
        metrics: Metrics = METRICS,
    ) -> None:
        self.store = store
        self.builds_root = builds_root
        self.hub = hub or EventHub()
        self.now = now  # ISO 8601 UTC: events' and rows' times
        self.metrics = metrics
        self.queue: Queue = _NoWorkers()
        self.outages: StoreWatch | None = None  # set on a waiting front door
        self._listeners = list(listeners)
        self._direct = store  # never waits: the watchdogs' look at a cancel flag

    def waiting(self, watch: StoreWatch) -> Deployments:
        """This front door over the store as background work uses it: the same hub and
        listeners, every store call waiting out an outage (`watch`)."""
        patient = Deployments(
            WaitingStore(self._direct, watch),
            builds_root=self.builds_root,
            hub=self.hub,
            now=self.now,
            metrics=self.metrics,
        )
        patient._listeners = self._listeners  # shared: one listens to both
        patient._direct = self._direct
        patient.outages = watch
        return patient

    def listen(self, listener: Listener) -> None:
        """`listener(deployment)` after each change of a deployment (never blocking)."""
        self._listeners.append(listener)

    def _changed(self, deployment: Deployment) -> Deployment:
        for listener in self._listeners:
            listener(deployment)
        return deployment

    # -- reads --------------------------------------------------------------------------------
    def get(self, deployment_id: str) -> Deployment:
        found = self.store.get(deployment_id)
        if found is None:
            raise UnknownDeployment(f"no deployment {deployment_id!r}")
        return found

    def newest(self, project_id: str | None = None, limit: int = 100) -> list[Deployment]:
        """Newest first."""
        return self.store.list_deployments(project_id, limit=limit)

    def running(self) -> list[Deployment]:
        return self.store.running()

    def events(self, deployment_id: str, after: int = 0, limit: int = 10_000) -> list[StoredEvent]:
        """The stored events with an id above `after`, oldest first."""
        return self.store.events(deployment_id, after_id=after, limit=limit)

    def backlog(self, deployment_id: str, after: int) -> AsyncIterator[StoredEvent]:
        """Every stored event after `after`, page by page, then the end (no live ones)."""
        return stored_events(self.store, deployment_id, after)

    def follow(
        self, deployment_id: str, after: int, tick_s: float = 1.0
    ) -> AsyncIterator[list[StoredEvent]]:
        """The stored events after `after`, then the live ones, each once and in order, in the
        batches at hand, until the deployment is over (`core.hub`); on the calling loop."""
        return follow_batches(
            self.store, lambda: self.hub.subscribe(deployment_id), deployment_id, after, tick_s
        )

    def checkpoints(self, deployment: Deployment) -> dict[str, Any]:
        """What an attempt starts from: the project's sealed values (a redeploy that must
        migrate needs its database password), then this deployment's earlier checkpoints (a
        new attempt), later ones winning."""
        values: dict[str, Any] = dict(self.store.get_sealed(deployment.project_id))
        if deployment.attempt > 1:
            after = 0
            while page := self.store.events(deployment.id, after_id=after):
                for event in page:
                    if event.type == EventType.CHECKPOINT.value and event.runner_seq is not None:
                        values[str(event.payload.get("key"))] = event.payload.get("value")
                after = page[-1].id
        return values

    def cancel_requested(self, deployment_id: str) -> bool:
        """Whether the deployment's cancel was requested (from any replica), asked without
        waiting: False while the store is away (asked again later)."""
        try:
            current = self._direct.get(deployment_id)
        except StoreUnavailable:
            return False
        return current is not None and current.cancel_requested

    def bundle_dir(self, deployment_id: str, attempt: int) -> Path | None:
        """The build directory a running attempt's bundle is made of; None for any other."""
        dep = self.store.get(deployment_id)
        if dep is None or dep.attempt != attempt or dep.status is not Status.RUNNING:
            return None
        return Path(dep.build_dir)

    def count_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for dep in self.store.list_deployments(None, limit=1_000_000):
            counts[dep.status.value] = counts.get(dep.status.value, 0) + 1
        return counts

    def health(self) -> str | None:
        """None when the store answers; else why not (the error's kind, never its text)."""
        try:
            self.store.list_deployments(None, limit=1)
        except Exception as e:  # noqa: BLE001 - any failure means "not healthy", and is told
            return f"unreachable: {type(e).__name__}"
        return None

    def remember_signature(self, signature: str, expires_at: float) -> bool:
        """False when the signature was seen before: a replayed request or link."""
        return self.store.remember_signature(signature, expires_at)

    # -- the adapters' commands -----------------------------------------------------------------
    def submit(
        self,
        project_id: str,
        project_name: str,
        build_dir: str,
        idempotency_key: str | None = None,
        *,
        exposure_policy: str | None = None,
        owner: str | None = None,
    ) -> tuple[Deployment, bool]:
        """Queue a deploy of the build directory `build_dir` names inside the builds root:
        (deployment, created). The same key with the same request is the first deployment;
        with another request, `Conflict`; a directory outside the root, `BuildDirError`."""
        resolved = resolve_build_dir(self.builds_root, build_dir)
        dep, created = self.store.submit(
            project_id,
            project_name,
            str(resolved),
            idempotency_key,
            owner=owner,
            exposure_policy=exposure_policy,
        )
        if created:
            self._changed(dep)
            self.queue.wake()
        return dep, created

    def cancel(self, deployment_id: str) -> Deployment:
        """Ask a queued or running deployment to stop; it as it is now."""
        check(Action.CANCEL, self.get(deployment_id))
        # The flag first: a worker claiming it from now on ends it without launching, and a
        # running one is stopped by its watchdog (here at once, on another replica within 2 s).
        flagged = self.store.update(deployment_id, Patch(cancel_requested=True))
        if flagged.status is not Status.QUEUED:
            self.queue.stop_running(deployment_id)
            return self._changed(flagged)
        # Still queued when flagged: it ends here. Should a claim slip in between, its worker
        # sees the flag and ends it cancelled too, so both writes agree.
        return self.conclude(flagged, outcome(CancelledUnlaunched(queued=True)))

    def retry(self, deployment_id: str) -> Deployment:
        """A new attempt of a failed, cancelled or unhealthy deployment, queued (it resumes
        from the earlier attempts' checkpoints)."""
        check(Action.RETRY, self.get(deployment_id))
        again = self._changed(self.store.requeue(deployment_id))
        self.queue.wake()
        return again

    def teardown(self, deployment_id: str) -> Deployment:
        """A teardown of the deployment's project, queued; the new deployment."""
        current = self.get(deployment_id)
        check(Action.TEARDOWN, current)
        removal, _ = self.store.submit(
            current.project_id, current.project_name, current.build_dir, None, action="teardown"
        )
        self._changed(removal)
        self.queue.wake()
        return removal

    # -- the queue's and the attempts' ------------------------------------------------------------
    def claim(self, replica: str, max_running: int) -> Deployment | None:
        """The next queued deployment this replica may run, now running (a new attempt)."""
        claimed = self.store.claim(replica, max_running)
        return None if claimed is None else self._changed(claimed)

    def record(self, deployment_id: str, events: list[NewEvent]) -> list[StoredEvent]:
        """Events stored (one batch), then published to the live followers."""
        stored = self.store.append_events(deployment_id, events)
        self.metrics.events_ingested.inc(len(stored))
        self.hub.publish_all(stored)
        return stored

    def apply(self, deployment: Deployment, changes: list[Change]) -> Deployment:
        """What a runner's events said (`core.status.fold`) written: the row's fields, a
        sealed value kept for the project. The deployment as it is now."""
        for change in changes:
            if isinstance(change, Sealed):
                self.store.put_sealed(deployment.project_id, change.key, change.value)
            elif change:
                deployment = self._changed(self.store.update(deployment.id, change))
        return deployment

    def conclude(self, deployment: Deployment, ending: Outcome) -> Deployment:
        """The deployment ended as `ending` says: its `status` event, its row, the listeners."""
        payload = {
            "status": ending.status.value,
            "error": ending.error,
            "exit_code": ending.exit_code,
        }
        self.record(deployment.id, [NewEvent(deployment.attempt, "status", self.now(), payload)])
        patch = Patch(
            status=ending.status,
            error=ending.error,
            exit_code=ending.exit_code,
            finished_at=self.now(),
        )
        return self._changed(self.store.update(deployment.id, patch))
