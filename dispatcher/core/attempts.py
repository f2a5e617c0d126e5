"""One attempt of one deployment, start to finish: spec, launch, follow, watch, conclude.

Runs on a worker thread. The watchdog (same thread, between lines is not enough: a silent
runner must still be stopped) is a second thread that enforces the deadline, the idle timeout
and cancellation: SIGTERM, a grace period, SIGKILL (the launcher's `terminate`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from dispatcher.container import split_env
from dispatcher.core.ingest import Change, Ingestor, derive_status, write_change
from dispatcher.core.outages import OutageWatch, StoreWatch, unavailable
from dispatcher.launchers.base import Exit, Handle, Launcher, RunSpec
from dispatcher.model import Deployment, Patch, Status, StoredEvent
from dispatcher.settings import Settings
from dispatcher.store.base import Store
from runner.checkpoints import resume_text
from runner.events import EventType, utc_now
from runner.masking import Masker

log = logging.getLogger("forge.dispatcher.attempts")

CANCEL_POLL_S = 2.0  # how often a running attempt reads the store for a cancel from elsewhere


def runner_args(deployment: Deployment) -> tuple[str, ...]:
    if deployment.action == "teardown":
        return ("teardown", "--name", deployment.project_name)
    return ("deploy", "--name", deployment.project_name)


def checkpoints(store: Store, deployment: Deployment) -> dict[str, Any]:
    """What this attempt starts from: the project's sealed checkpoints (a redeploy that must
    migrate needs its database password), then this deployment's earlier checkpoints (a new
    attempt), later ones winning."""
    values: dict[str, Any] = dict(store.get_sealed(deployment.project_id))
    if deployment.attempt > 1:
        after = 0
        while page := store.events(deployment.id, after_id=after):
            for event in page:
                if event.type == EventType.CHECKPOINT.value and event.runner_seq is not None:
                    values[str(event.payload.get("key"))] = event.payload.get("value")
            after = page[-1].id
    return values


def build_spec(
    settings: Settings, store: Store, deployment: Deployment, build_dir: Path
) -> RunSpec:
    """What to run for this attempt (pure given the store's answers)."""
    env, secrets = split_env(settings.runner_env)
    env["FORGE_DEPLOY_ID"] = deployment.id
    env["FORGE_SEAL_PUBLIC_KEY"] = settings.seal_public_key
    secrets["FORGE_SEAL_PRIVATE_KEY"] = settings.seal_private_key
    resume = None
    if deployment.action == "deploy":
        values = checkpoints(store, deployment)
        resume = resume_text(deployment.id, values) if values else None
    return RunSpec(
        deployment_id=deployment.id,
        attempt=deployment.attempt,
        build_dir=build_dir,
        args=runner_args(deployment),
        env=env,
        secrets=secrets,
        resume_events=resume,
        deadline_s=settings.deadline_s,
    )


def backend_watch(launcher: Launcher, stopped: threading.Event | None = None) -> OutageWatch:
    """The watch of `launcher`'s backend: its calls waited out while it does not answer."""
    return OutageWatch(
        stopped,
        subject=launcher.backend,
        classify=launcher.unavailable,
        meanwhile="runners go on; their output is read on once it answers",
        logger="forge.dispatcher.launcher",
    )


class Attempt:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        launcher: Launcher,
        deployment: Deployment,
        masker: Masker,
        publish: Callable[[StoredEvent], None],
        notify: Callable[[Deployment], None],
        clock: Callable[[], float] = time.monotonic,
        watch: StoreWatch | None = None,
        engine: OutageWatch | None = None,
    ) -> None:
        self.settings = settings
        self.watch = watch or StoreWatch()
        self.engine = engine or backend_watch(launcher)
        self.store = store
        self.launcher = launcher
        self.deployment = deployment
        self.masker = masker
        self.publish = publish
        self.notify = notify
        self.clock = clock
        self.done = threading.Event()
        self.cancel_requested = threading.Event()
        self.timed_out: str | None = None
        self.cancelled = False
        self._reads = 0  # reads of the runner's output begun (`_follow`)

    def _update(self, patch: Patch) -> Deployment:
        self.deployment = self.watch.call(
            lambda: self.store.update(self.deployment.id, patch), f"updating {self.deployment.id}"
        )
        self.notify(self.deployment)
        return self.deployment

    def _changed(self, changes: list[Change]) -> None:
        for change in changes:
            updated = self.watch.call(
                partial(write_change, self.store, self.deployment, change),
                f"updating {self.deployment.id}",
            )
            if updated is not None:
                self.deployment = updated
                self.notify(updated)

    def run(self, handle: Handle | None = None) -> Deployment:
        """Launch (or, with `handle`, re-attach to) the attempt and see it to its end."""
        dep = self.deployment
        ingest = Ingestor(
            self.store,
            dep.id,
            dep.attempt,
            self.masker,
            self.publish,
            self._changed,
            watch=self.watch,
        )
        reattached = handle is not None
        reproduce = None
        if handle is None:
            current = self.watch.call(lambda: self.store.get(dep.id), f"starting {dep.id}")
            if current is not None and current.cancel_requested:
                # Cancelled while it was being claimed: nothing was started, nothing to stop.
                return self._finish(ingest, None, Status.CANCELLED, "cancelled before it started")
            spec = self.watch.call(
                lambda: build_spec(self.settings, self.store, dep, Path(dep.build_dir)),
                f"starting {dep.id}",
            )
            for value in spec.secrets.values():
                self.masker.register(value)
            handle = self.engine.call(lambda: self.launcher.launch(spec), f"launching {dep.id}")
            reproduce = getattr(self.launcher, "reproduce_command", None)
        else:
            # A restarted dispatcher: the runner's stream starts again from its first line;
            # what is stored already is folded (an eof may be among it), not stored again.
            stored = self.watch.call(lambda: self.store.events(dep.id), f"re-attaching {dep.id}")
            ingest.replay(e for e in stored if e.attempt == dep.attempt)
        ingest.note(
            "status",
            status=Status.RUNNING.value,
            launcher=handle.launcher,
            ref=handle.ref,
            reattached=reattached,
        )
        if not reattached and callable(reproduce):  # the `docker run` that replays this attempt
            ingest.note("log", level="info", message=str(reproduce(spec)), source="reproduce")
        last_line = [self.clock()]
        watchdog = threading.Thread(
            target=self._watch, args=(handle, last_line), name=f"watch-{dep.id}", daemon=True
        )
        watchdog.start()
        flusher = threading.Thread(
            target=self._flush_while_running, args=(ingest,), name=f"flush-{dep.id}", daemon=True
        )
        flusher.start()  # a quiet runner's lines still reach the store and the stream in 50 ms
        backend_out: list[tuple[float, str]] = []  # outages of the backend met while following
        try:
            exit_ = self.engine.call(
                partial(self._follow, handle, ingest, last_line),
                f"following {dep.id}",
                lambda seconds, why: backend_out.append((seconds, why)),
            )
        except TimeoutError:
            exit_ = Exit(None, "lost")
        finally:
            self.done.set()
            ingest.flush()
        if backend_out:
            seconds, why = backend_out[-1]
            ingest.note(
                "log",
                level="warning",
                message=f"the {self.launcher.backend} did not answer for {seconds:.1f} s "
                f"({self.masker.mask(why)}); the runner's output was read on once it did",
                source="backend-outage",
            )
        status, error = derive_status(
            ingest.folded,
            exit_,
            cancel_requested=self.cancelled,
            timed_out=self.timed_out,
        )
        if status is Status.CANCELLED and not self.cancelled:  # a SIGTERM nobody here sent
            status, error = Status.FAILED, self._stopped_from_outside(backend_out, error)
        elif status is Status.FAILED and backend_out and ingest.folded.eof is None:
            error = self._output_lost_with(backend_out, error)
        if (
            status is Status.FAILED
            and error
            and exit_.code not in (0, None)
            and ingest.folded.eof is None
        ):
            tail = self.masker.mask(self.launcher.stderr_tail(handle, 20))
            ingest.note("log", level="error", message=tail, source="runner-stderr")
        watchdog.join()  # a terminate in progress ends before the runner is removed
        return self._finish(ingest, handle, status, error, exit_.code)

    def _follow(self, handle: Handle, ingest: Ingestor, last_line: list[float]) -> Exit:
        """The runner's output to its end, then its exit. Tried again after the backend's
        outage: the stream starts again from the first line, and what was read is skipped. A
        stream that ended before the runner's last line (cut by the engine going away) is
        read once more after the exit. Every read after the first (and a re-attach's) starts
        with the launcher's `recorded` copy: what the backend lost from its log is there."""
        for _ in range(2):
            if self._reads or ingest.last_runner_seq:
                ingest.skip_through_seq = max(ingest.skip_through_seq, ingest.last_runner_seq)
                for line in self.launcher.recorded(handle):
                    ingest.line(line)
            self._reads += 1
            ingest.skip_through_seq = max(ingest.skip_through_seq, ingest.last_runner_seq)
            for line in self.launcher.stream(handle):
                last_line[0] = self.clock()
                ingest.line(line)
            exit_ = self.launcher.wait(handle, timeout_s=60)
            if ingest.folded.eof is not None or exit_.reason == "lost":
                break
        return exit_

    def _output_lost_with(self, backend_out: list[tuple[float, str]], said: str | None) -> str:
        """The error of a runner whose last output went with the backend: a Docker engine
        down when the runner wrote its last lines keeps no log of them (the runner may even
        have finished). Its checkpoints are stored: a retry resumes from them."""
        seconds, _ = backend_out[-1]
        return (
            f"the {self.launcher.backend} went away for {seconds:.1f} s mid-deploy and the"
            f" runner's last output was lost with it ({said}); retry resumes from its checkpoints"
        )

    def _stopped_from_outside(self, backend_out: list[tuple[float, str]], said: str | None) -> str:
        """The error of a runner that stopped on a SIGTERM no cancel sent."""
        if backend_out:
            seconds, _ = backend_out[-1]
            return (
                f"the {self.launcher.backend} went away for {seconds:.1f} s mid-deploy (a restart"
                " or a crash) and stopped the runner; retry resumes from its checkpoints"
            )
        return (
            f"the runner was stopped from outside the dispatcher ({said or 'SIGTERM'}); "
            "retry resumes from its checkpoints"
        )

    def _finish(
        self,
        ingest: Ingestor,
        handle: Handle | None,
        status: Status,
        error: str | None,
        exit_code: int | None = None,
    ) -> Deployment:
        """The runner removed first, then the final status: a client that sees the deployment
        ended finds no container or process of it left."""
        if handle is not None:
            try:
                self.launcher.remove(handle)
            # Any backend error (engine, file system): logged and kept as an event, and the
            # status still recorded; the next start's reconcile removes what is left.
            except Exception as e:  # noqa: BLE001
                log.warning("%s: could not remove %s: %s", self.deployment.id, handle.ref, e)
                ingest.note("log", level="warning", message=f"runner not removed: {e}")
        ingest.note("status", status=status.value, error=error, exit_code=exit_code)
        return self._update(
            Patch(status=status, error=error, exit_code=exit_code, finished_at=utc_now())
        )

    def _flush_while_running(self, ingest: Ingestor) -> None:
        while not self.done.wait(0.05):
            ingest.flush()

    def request_cancel(self) -> None:
        """This replica's cancel: the watchdog acts on its next tick, without the store."""
        self.cancel_requested.set()

    def _cancelled_elsewhere(self) -> bool:
        try:
            current = self.store.get(self.deployment.id)
        except Exception as e:
            if unavailable(e) is None:
                raise
            return False  # asked again on the next poll; the outage is logged by the watch
        return current is not None and current.cancel_requested

    def _watch(self, handle: Handle, last_line: list[float]) -> None:
        start = polled = self.clock()
        while not self.done.wait(0.25):
            now = self.clock()
            reason = None
            if not self.cancel_requested.is_set() and now - polled >= CANCEL_POLL_S:
                polled = now  # another replica's cancel reaches us through the store
                if self._cancelled_elsewhere():
                    self.cancel_requested.set()
            if self.watch.down or self.engine.down:  # its output is not being read: not the
                # runner's silence
                last_line[0] = now
            if self.cancel_requested.is_set():
                self.cancelled = True
                reason = "cancel requested"
            elif now - start > self.settings.deadline_s:
                self.timed_out = reason = f"deadline of {self.settings.deadline_s:.0f} s exceeded"
            elif now - last_line[0] > self.settings.idle_timeout_s:
                self.timed_out = reason = (
                    f"idle: no output for {self.settings.idle_timeout_s:.0f} s"
                )
            if reason is not None:
                log.warning("%s: stopping the runner (%s)", self.deployment.id, reason)
                self.engine.call(
                    lambda: self.launcher.terminate(handle, self.settings.cancel_grace_s),
                    f"stopping {self.deployment.id}",
                )
                return
