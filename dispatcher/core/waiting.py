"""The wait-out, applied once around each adapter: `WaitingStore` and `WaitingLauncher` are the
store and the launcher as the dispatcher's background work uses them (the claim loop, the
attempts), every call of theirs waiting out an outage of the subject (`core.outages`).

A request of the HTTP API uses the store as it is instead: during an outage it is answered 503
at once, never held.

Two calls need more than "try again":
- `append_events` after an outage: a batch whose commit was lost with its connection may be
  stored already; each of its events is looked for (a runner event by its seq, the
  dispatcher's own by type and time) and only what is missing is written, so each is stored
  once.
- `stream` cut by an outage: once the backend answers, the runner's own copy of its output
  (`Launcher.recorded`) comes first, then the stream opened again from its first line. Lines
  come more than once; the reader keeps each runner event once by its seq.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from dispatcher.core.outages import OutageWatch, StoreWatch
from dispatcher.core.ports import Exit, Handle, Launcher, NewEvent, RunSpec, Store
from dispatcher.model import Deployment, Patch, StoredEvent


def backend_watch(launcher: Launcher, stopped: threading.Event | None = None) -> OutageWatch:
    """The watch of `launcher`'s backend: its calls waited out while it does not answer."""
    return OutageWatch(
        stopped,
        subject=launcher.backend,
        classify=launcher.unavailable,
        meanwhile="runners go on; their output is read on once it answers",
        logger="forge.dispatcher.launcher",
    )


class WaitingStore(Store):
    """`store`, each call waiting out its outages (`watch`)."""

    def __init__(self, store: Store, watch: StoreWatch) -> None:
        self.inner = store
        self.watch = watch

    def migrate(self) -> None:
        self.watch.call(self.inner.migrate, "migrating")

    def close(self) -> None:
        self.inner.close()

    def on_connection_lost(self, tell: Callable[[BaseException], None]) -> None:
        self.inner.on_connection_lost(tell)

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
        return self.watch.call(
            lambda: self.inner.submit(
                project_id, project_name, build_dir, idempotency_key, action, owner, exposure_policy
            ),
            f"queueing a {action} of {project_id}",
        )

    def get(self, deployment_id: str) -> Deployment | None:
        return self.watch.call(lambda: self.inner.get(deployment_id), f"reading {deployment_id}")

    def list_deployments(self, project_id: str | None = None, limit: int = 100) -> list[Deployment]:
        return self.watch.call(
            lambda: self.inner.list_deployments(project_id, limit), "listing deployments"
        )

    def claim(self, worker: str, max_running: int) -> Deployment | None:
        return self.watch.call(
            lambda: self.inner.claim(worker, max_running), "claiming queued deployments"
        )

    def update(self, deployment_id: str, patch: Patch) -> Deployment:
        return self.watch.call(
            lambda: self.inner.update(deployment_id, patch), f"updating {deployment_id}"
        )

    def requeue(self, deployment_id: str) -> Deployment:
        return self.watch.call(
            lambda: self.inner.requeue(deployment_id), f"queueing {deployment_id} again"
        )

    def running(self) -> list[Deployment]:
        return self.watch.call(self.inner.running, "listing running deployments")

    def append_events(self, deployment_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        tries = 0

        def append() -> list[StoredEvent]:
            nonlocal tries
            tries += 1
            if tries == 1:
                return self.inner.append_events(deployment_id, events)
            found, missing = self._stored_already(deployment_id, events)
            return found + self.inner.append_events(deployment_id, missing)

        return self.watch.call(append, f"storing the events of {deployment_id}")

    def events(
        self, deployment_id: str, after_id: int = 0, limit: int = 10_000
    ) -> list[StoredEvent]:
        return self.watch.call(
            lambda: self.inner.events(deployment_id, after_id, limit),
            f"reading the events of {deployment_id}",
        )

    def put_sealed(self, project_id: str, key: str, sealed: str) -> None:
        self.watch.call(
            lambda: self.inner.put_sealed(project_id, key, sealed), f"keeping {key} of {project_id}"
        )

    def get_sealed(self, project_id: str) -> dict[str, str]:
        return self.watch.call(
            lambda: self.inner.get_sealed(project_id), f"reading the sealed values of {project_id}"
        )

    def remember_signature(self, signature: str, expires_at: float) -> bool:
        return self.watch.call(
            lambda: self.inner.remember_signature(signature, expires_at), "remembering a signature"
        )

    def _stored_already(
        self, deployment_id: str, pending: Sequence[NewEvent]
    ) -> tuple[list[StoredEvent], list[NewEvent]]:
        """(what of `pending` the store has, what it lacks)."""
        seen: dict[Identity, StoredEvent] = {}
        after = 0
        while page := self.inner.events(deployment_id, after_id=after):
            for e in page:
                seen[_identity(e.attempt, e.runner_seq, e.type, e.ts)] = e
            after = page[-1].id
        found, missing = [], []
        for event in pending:
            key = _identity(event.attempt, event.runner_seq, event.type, event.ts)
            if key in seen:
                found.append(seen[key])
            else:
                missing.append(event)
        return found, missing


Identity = tuple[int, int | None, str, str]


def _identity(attempt: int, seq: int | None, kind: str, ts: str) -> Identity:
    """What tells one event of a deployment from another: a runner event's seq in its attempt;
    for the dispatcher's own, their type and time."""
    return (attempt, seq, kind, "" if seq is not None else ts)


class WaitingLauncher(Launcher):
    """`launcher`, its backend's outages waited out (`watch`) where the attempt must go on:
    launching, reading the runner's output, waiting for its end, stopping it. Removing a
    runner, listing them, its stderr and its health answer at once: the caller decides what an error
    there means (a runner not removed is removed by the next start's reconcile)."""

    def __init__(self, launcher: Launcher, watch: OutageWatch) -> None:
        self.inner = launcher
        self.watch = watch
        self.name = launcher.name
        self.backend = launcher.backend

    def unavailable(self, error: BaseException) -> str | None:
        return self.inner.unavailable(error)

    def reproduce_command(self, spec: RunSpec) -> str | None:
        return self.inner.reproduce_command(spec)

    def launch(self, spec: RunSpec) -> Handle:
        return self.watch.call(lambda: self.inner.launch(spec), f"launching {spec.name}")

    def recorded(self, handle: Handle) -> list[str]:
        return self.inner.recorded(handle)  # kept apart from the backend: nothing to wait for

    def stream(self, handle: Handle) -> Iterator[str]:
        waits = self.watch.waits()
        again = False
        while True:
            try:
                if again:
                    yield from self.inner.recorded(handle)
                for line in self.inner.stream(handle):
                    if self.watch.down:  # a line from the backend: it answers again
                        self.watch.answered()
                    yield line
            except Exception as e:  # noqa: BLE001 - wait_out raises it unless it is an outage
                self.watch.wait_out(e, f"following {handle.deployment_id}", waits)
                again = True
                continue
            self.watch.answered()
            return

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        return self.watch.call(
            lambda: self.inner.wait(handle, timeout_s), f"waiting for {handle.deployment_id}"
        )

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        return self.inner.stderr_tail(handle, lines)

    def terminate(self, handle: Handle, grace_s: float) -> None:
        self.watch.call(
            lambda: self.inner.terminate(handle, grace_s), f"stopping {handle.deployment_id}"
        )

    def remove(self, handle: Handle) -> None:
        self.inner.remove(handle)

    def running(self) -> list[Handle]:
        return self.inner.running()

    def health(self) -> str | None:
        return self.inner.health()
