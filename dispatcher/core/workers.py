"""This replica's workers: they claim queued deployments through the front door (so several
replicas on one PostgreSQL share the queue), up to `FORGE_MAX_CONCURRENT` at once, never two of
one project (a second deploy of a project waits in the queue until the first ends), and run
each as an `Attempt` on a thread of their pool.

On start they reconcile what an earlier process of this replica left: running deployments
whose runner still exists are re-attached, those whose runner exited get its exit and the
rest of its log, those whose runner is gone end failed ("lost", concluded like any other
ending); runners of ours with no running deployment are removed.

Their store and launcher calls wait out an outage (`core.waiting`, one watch each); a
dispatcher stopping meanwhile leaves its attempts running in the store, and the next start
re-attaches to them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dispatcher.core.attempts import Attempt
from dispatcher.core.deployments import Deployments
from dispatcher.core.errors import StoreStopped, UnknownDeployment
from dispatcher.core.outages import StoreWatch
from dispatcher.core.ports import Handle, Launcher
from dispatcher.core.status import DispatcherFailed, RunnerGone, outcome
from dispatcher.core.waiting import WaitingLauncher, backend_watch
from dispatcher.model import TERMINAL, Deployment
from dispatcher.settings import Settings
from runner.masking import Masker

log = logging.getLogger("forge.dispatcher")


class Workers:
    def __init__(
        self,
        deployments: Deployments,
        launcher: Launcher,
        settings: Settings,
        masker: Masker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.masker = masker
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.store_watch = StoreWatch(self._stop)  # store outages waited out, logged once each
        deployments.store.on_connection_lost(self.store_watch.noticed)  # one no call met
        self.front = deployments
        self.deployments = deployments.waiting(self.store_watch)
        self.launcher = WaitingLauncher(launcher, backend_watch(launcher, self._stop))
        slots = settings.attempts.max_concurrent
        self._pool = ThreadPoolExecutor(slots, thread_name_prefix="attempt")
        self._slots = threading.Semaphore(slots)
        self._reattach_pool = ThreadPoolExecutor(thread_name_prefix="reattach")
        self._loop: threading.Thread | None = None
        self._attempts: dict[str, Attempt] = {}  # running here, by deployment id
        self._attempts_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
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

    # -- what the front door asks (`deployments.Queue`) -------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop_running(self, deployment_id: str) -> None:
        with self._attempts_lock:
            running = self._attempts.get(deployment_id)
        if running is not None:
            running.request_cancel()  # stopped on its watchdog's next tick

    # -- the queue ---------------------------------------------------------------------------
    def _claim(self) -> Deployment | None:
        attempts = self.settings.attempts
        return self.deployments.claim(attempts.replica_id, attempts.max_concurrent)

    def _claim_loop(self) -> None:
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=1.0):
                continue
            try:
                claimed = self._claim()
            except StoreStopped:
                self._slots.release()
                return
            if claimed is None:
                self._slots.release()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._pool.submit(self.run, claimed)

    def run_next(self) -> Deployment | None:
        """Claim the next queued deployment and run its attempt to its end, on this thread;
        None when nothing could be claimed."""
        claimed = self._claim()
        return None if claimed is None else self.run(claimed, slot=False)

    def run(
        self, deployment: Deployment, handle: Handle | None = None, slot: bool = True
    ) -> Deployment:
        """One attempt of `deployment` (claimed; re-attached to `handle`) to its end."""
        attempt = Attempt(
            self.deployments, self.launcher, deployment, self.settings, self.masker, self.clock
        )
        with self._attempts_lock:
            self._attempts[deployment.id] = attempt
        try:
            return attempt.run(handle)
        except StoreStopped:
            # Still running in the store: the next start's reconcile re-attaches to its runner.
            log.warning("%s: left running, the store unavailable at stop", deployment.id)
            return attempt.deployment
        except Exception as e:
            log.exception("attempt %s/%d crashed", deployment.id, deployment.attempt)
            failed = outcome(DispatcherFailed(self.masker.mask(str(e))))
            with contextlib.suppress(StoreStopped):
                return self.deployments.conclude(deployment, failed)
            return attempt.deployment
        finally:
            with self._attempts_lock:
                self._attempts.pop(deployment.id, None)
            if slot:
                self._slots.release()
            self._wake.set()  # a project may have a waiting deployment now

    # -- reconcile ---------------------------------------------------------------------------
    def reconcile(self) -> None:
        replica = self.settings.attempts.replica_id
        handles = {(h.deployment_id, h.attempt): h for h in self.launcher.running()}
        for deployment in self.front.running():
            if deployment.claimed_by not in (None, replica):
                continue  # another replica's
            handle = handles.pop((deployment.id, deployment.attempt), None)
            if handle is None:
                log.warning("%s: its runner is gone", deployment.id)
                self.front.conclude(deployment, outcome(RunnerGone()))
                continue
            log.info("%s: re-attaching to attempt %d", deployment.id, deployment.attempt)
            # Re-attached runners already run: they take a slot when one is free, and never
            # block the start (a restart may come with a lower FORGE_MAX_CONCURRENT).
            slot = self._slots.acquire(blocking=False)
            self._reattach_pool.submit(self.run, deployment, handle, slot)
        for handle in handles.values():
            try:
                current = self.front.get(handle.deployment_id)
            except UnknownDeployment:
                continue  # another installation's runner on this engine: not ours to remove
            if current.status in TERMINAL or current.attempt != handle.attempt:
                log.info("removing leftover runner %s", handle.ref)
                self.launcher.remove(handle)
