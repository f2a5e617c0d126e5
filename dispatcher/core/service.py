"""The dispatcher, assembled: store, launcher, workers, event hub, callbacks; what the API controls.

Workers claim queued deployments from the store (so several replicas on one PostgreSQL share
the queue) up to FORGE_MAX_CONCURRENT, never two of one project at once (a second deploy of a
project **waits** in the queue until the first ends). On start the service reconciles what an
earlier process of this replica left: running deployments whose runner still exists are
re-attached, those whose runner exited get its exit and the rest of its log, those whose runner
is gone end failed ("lost"); runners of ours with no running deployment are removed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dispatcher.container import is_secret_name
from dispatcher.core.attempts import Attempt, backend_watch
from dispatcher.core.callbacks import Callbacks
from dispatcher.core.hub import EventHub, Subscription
from dispatcher.core.outages import StoreStopped, StoreWatch
from dispatcher.core.policy import Action, check
from dispatcher.launchers.base import Handle, Launcher
from dispatcher.model import TERMINAL, Deployment, Patch, Status
from dispatcher.settings import Settings
from dispatcher.store.base import NewEvent, Store
from runner.events import utc_now
from runner.masking import Masker

log = logging.getLogger("forge.dispatcher")


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        launcher: Launcher,
        hub: EventHub | None = None,
        on_status: Callable[[Deployment], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self.hub = hub or EventHub()
        self.callbacks = Callbacks(settings.callback_url, settings.hook_secret)
        self.on_status = on_status
        self.masker = Masker()
        for name, value in settings.runner_env.items():
            if is_secret_name(name):
                self.masker.register(value)
        self.masker.register(settings.seal_private_key)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.watch = StoreWatch(self._stop)  # store outages waited out, logged once each
        store.on_connection_lost(self.watch.noticed)  # a short one no call met as an error
        self.engine = backend_watch(launcher, self._stop)  # the launcher's backend's, likewise
        self._pool = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix="attempt")
        self._slots = threading.Semaphore(settings.max_concurrent)
        self._reattach_pool = ThreadPoolExecutor(thread_name_prefix="reattach")
        self._loop: threading.Thread | None = None
        self._attempts: dict[str, Attempt] = {}  # running here, by deployment id
        self._attempts_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.store.migrate()
        self.callbacks.start()
        self.reconcile()
        self._loop = threading.Thread(target=self._claim_loop, name="claim", daemon=True)
        self._loop.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._loop is not None:
            self._loop.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reattach_pool.shutdown(wait=False, cancel_futures=True)
        self.callbacks.stop()

    def wake(self) -> None:
        self._wake.set()

    def _notify(self, deployment: Deployment) -> None:
        self.callbacks.status_changed(deployment)
        if self.on_status is not None:
            self.on_status(deployment)

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=1.0):
                continue
            try:
                claimed = self.watch.call(self._claim, "claiming queued deployments")
            except StoreStopped:
                self._slots.release()
                return
            if claimed is None:
                self._slots.release()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._notify(claimed)
            self._pool.submit(self._run, claimed, None)

    def _claim(self) -> Deployment | None:
        return self.store.claim(self.settings.replica_id, self.settings.max_concurrent)

    def _run(self, deployment: Deployment, handle: Handle | None, slot: bool = True) -> None:
        attempt = Attempt(
            self.settings,
            self.store,
            self.launcher,
            deployment,
            self.masker,
            self.hub.publish,
            self._notify,
            watch=self.watch,
            engine=self.engine,
        )
        with self._attempts_lock:
            self._attempts[deployment.id] = attempt
        try:
            attempt.run(handle)
        except StoreStopped:
            # Still running in the store: the next start's reconcile re-attaches to its runner.
            log.warning("%s: left running, the store unavailable at stop", deployment.id)
        except Exception as e:
            log.exception("attempt %s/%d crashed", deployment.id, deployment.attempt)
            with contextlib.suppress(StoreStopped):
                self._crashed(deployment, f"dispatcher error: {self.masker.mask(str(e))}")
        finally:
            with self._attempts_lock:
                self._attempts.pop(deployment.id, None)
            if slot:
                self._slots.release()
            self._wake.set()  # a project may have a waiting deployment now

    def _crashed(self, deployment: Deployment, error: str) -> None:
        payload = {"status": Status.FAILED.value, "error": error, "exit_code": None}
        event = NewEvent(deployment.attempt, "status", utc_now(), payload)
        stored = self.watch.call(
            lambda: self.store.append_events(deployment.id, [event]), f"failing {deployment.id}"
        )
        self.hub.publish_all(stored)
        patch = Patch(status=Status.FAILED, error=error, finished_at=utc_now())
        self._notify(self.watch.call(lambda: self.store.update(deployment.id, patch), "failing it"))

    # -- reconcile ---------------------------------------------------------------------------
    def reconcile(self) -> None:
        handles = {(h.deployment_id, h.attempt): h for h in self.launcher.running()}
        for deployment in self.store.running():
            if deployment.claimed_by not in (None, self.settings.replica_id):
                continue  # another replica's
            handle = handles.pop((deployment.id, deployment.attempt), None)
            if handle is None:
                log.warning("%s: its runner is gone", deployment.id)
                self.store.update(
                    deployment.id,
                    Patch(
                        status=Status.FAILED,
                        error="lost: the runner disappeared while the dispatcher was down",
                        finished_at=utc_now(),
                    ),
                )
                continue
            log.info("%s: re-attaching to attempt %d", deployment.id, deployment.attempt)
            # Re-attached runners already run: they take a slot when one is free, and never
            # block the start (a restart may come with a lower FORGE_MAX_CONCURRENT).
            slot = self._slots.acquire(blocking=False)
            self._reattach_pool.submit(self._run, deployment, handle, slot)
        for handle in handles.values():
            current = self.store.get(handle.deployment_id)
            if current is None:
                continue  # another installation's runner on this engine: not ours to remove
            if current.status in TERMINAL or current.attempt != handle.attempt:
                log.info("removing leftover runner %s", handle.ref)
                self.launcher.remove(handle)

    # -- the API's Control -------------------------------------------------------------------
    def cancel(self, deployment_id: str) -> Deployment:
        check(Action.CANCEL, self._get(deployment_id))
        # The flag first: a worker claiming it from now on ends it without launching (see
        # Attempt.run), and a running one is stopped by its watchdog.
        flagged = self.store.update(deployment_id, Patch(cancel_requested=True))
        if flagged.status is not Status.QUEUED:
            with self._attempts_lock:
                running = self._attempts.get(deployment_id)
            if running is not None:
                running.request_cancel()  # stopped on its watchdog's next tick
            return flagged
        # Still queued when flagged: end it here. Should a claim slip in between, its worker
        # sees the flag and ends it cancelled too, so both writes agree.
        error = "cancelled while queued"
        payload = {"status": Status.CANCELLED.value, "error": error, "exit_code": None}
        self.hub.publish_all(
            self.store.append_events(
                deployment_id, [NewEvent(flagged.attempt, "status", utc_now(), payload)]
            )
        )
        done = self.store.update(
            deployment_id, Patch(status=Status.CANCELLED, error=error, finished_at=utc_now())
        )
        self._notify(done)
        return done

    def retry(self, deployment_id: str) -> Deployment:
        check(Action.RETRY, self._get(deployment_id))
        again = self.store.requeue(deployment_id)
        self._notify(again)
        self.wake()
        return again

    def teardown(self, deployment_id: str) -> Deployment:
        current = self._get(deployment_id)
        check(Action.TEARDOWN, current)
        removal, _ = self.store.submit(
            current.project_id, current.project_name, current.build_dir, None, action="teardown"
        )
        self.wake()
        return removal

    def subscribe(self, deployment_id: str) -> Subscription:
        return self.hub.subscribe(deployment_id)

    def _get(self, deployment_id: str) -> Deployment:
        found = self.store.get(deployment_id)
        if found is None:
            raise KeyError(deployment_id)
        return found
