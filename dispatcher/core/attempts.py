"""One attempt of one deployment, start to finish: spec, launch, follow, watch, end.

Runs on a worker thread with the waiting front door and launcher (`core.waiting`): a store or
backend outage is waited out under it. The watchdog, a second thread, enforces the deadline,
the idle timeout and cancellation (a silent runner must still be stopped): SIGTERM, a grace
period, SIGKILL (the launcher's `terminate`). The end is decided by `core.status.outcome` and
written by `Deployments.conclude`, after the runner was removed: a client that sees the
deployment ended finds no container or process of it left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from dispatcher.core.deployments import Deployments
from dispatcher.core.ingest import Ingestor
from dispatcher.core.ports import Exit, Handle, RunSpec
from dispatcher.core.secrets import split_env
from dispatcher.core.status import (
    CancelledUnlaunched,
    Change,
    Outcome,
    RunnerEnded,
    outcome,
)
from dispatcher.core.waiting import WaitingLauncher
from dispatcher.model import Deployment, Status
from dispatcher.settings import Settings
from runner.checkpoints import resume_text
from runner.masking import Masker
from runner.providers.catalog import SEAL_PRIVATE_KEY

log = logging.getLogger("forge.dispatcher.attempts")

CANCEL_POLL_S = 2.0  # how often a running attempt reads the store for a cancel from elsewhere


def runner_args(deployment: Deployment) -> tuple[str, ...]:
    if deployment.action == "teardown":
        return ("teardown", "--name", deployment.project_name)
    return ("deploy", "--name", deployment.project_name)


def build_spec(
    settings: Settings, deployment: Deployment, build_dir: Path, checkpoints: Mapping[str, Any]
) -> RunSpec:
    """What to run for this attempt (pure): the runner's settings split into environment and
    secrets file, the deployment's own (its id, its exposure policy), and, for a deploy, the
    `checkpoints` it resumes from (`Deployments.checkpoints`)."""
    env, secrets = split_env(settings.runner.env)
    env["FORGE_DEPLOY_ID"] = deployment.id
    if deployment.exposure_policy is not None:
        env["FORGE_EXPOSURE_POLICY"] = deployment.exposure_policy
    env["FORGE_SEAL_PUBLIC_KEY"] = settings.runner.seal_public_key
    secrets[SEAL_PRIVATE_KEY] = settings.runner.seal_private_key
    resume = None
    if deployment.action == "deploy" and checkpoints:
        resume = resume_text(deployment.id, checkpoints)
    return RunSpec(
        deployment_id=deployment.id,
        attempt=deployment.attempt,
        build_dir=build_dir,
        args=runner_args(deployment),
        env=env,
        secrets=secrets,
        resume_events=resume,
        deadline_s=settings.attempts.deadline_s,
    )


class Attempt:
    def __init__(
        self,
        deployments: Deployments,
        launcher: WaitingLauncher,
        deployment: Deployment,
        settings: Settings,
        masker: Masker,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployments = deployments
        self.launcher = launcher
        self.deployment = deployment
        self.settings = settings
        self.masker = masker
        self.clock = clock
        self.done = threading.Event()
        self.cancel_requested = threading.Event()
        self.timed_out: str | None = None
        self.cancelled = False

    def run(self, handle: Handle | None = None) -> Deployment:
        """Launch (or, with `handle`, re-attach to) the attempt and see it to its end."""
        dep = self.deployment
        ingest = Ingestor(
            partial(self.deployments.record, dep.id),
            dep.attempt,
            self.masker,
            self._changed,
            store_outages=self.deployments.outages,
            now=self.deployments.now,
        )
        spec = None
        if handle is None:
            if self.deployments.get(dep.id).cancel_requested:
                # Cancelled while it was being claimed: nothing was started, nothing to stop.
                return self._end(ingest, None, outcome(CancelledUnlaunched(queued=False)))
            spec, handle = self._launch()
        else:
            # A restarted dispatcher: the runner's stream starts again from its first line;
            # what is stored already is folded (an eof may be among it), not stored again.
            ingest.replay(e for e in self.deployments.events(dep.id) if e.attempt == dep.attempt)
        ingest.note(
            "status",
            status=Status.RUNNING.value,
            launcher=handle.launcher,
            ref=handle.ref,
            reattached=spec is None,
        )
        reproduce = None if spec is None else self.launcher.reproduce_command(spec)
        if reproduce is not None:  # the command line that replays this attempt by hand
            ingest.note("log", level="info", message=reproduce, source="reproduce")
        return self._end(ingest, handle, self._see_through(handle, ingest))

    def _launch(self) -> tuple[RunSpec, Handle]:
        dep = self.deployment
        checkpoints = self.deployments.checkpoints(dep) if dep.action == "deploy" else {}
        spec = build_spec(self.settings, dep, Path(dep.build_dir), checkpoints)
        for value in spec.secrets.values():
            self.masker.register(value)
        return spec, self.launcher.launch(spec)

    def _changed(self, changes: list[Change]) -> None:
        self.deployment = self.deployments.apply(self.deployment, changes)

    def _see_through(self, handle: Handle, ingest: Ingestor) -> Outcome:
        """Follow the runner to its end under the watchdog; how it ended."""
        started = self.clock()  # the deadline and the idle timeout count from here
        last_line = [started]
        watchdog = threading.Thread(
            target=self._watch,
            args=(handle, started, last_line),
            name=f"watch-{self.deployment.id}",
            daemon=True,
        )
        watchdog.start()
        flusher = threading.Thread(
            target=self._flush_while_running,
            args=(ingest,),
            name=f"flush-{self.deployment.id}",
            daemon=True,
        )
        flusher.start()  # a quiet runner's lines still reach the store and the stream in 50 ms
        backend = self.launcher.watch
        outages_before = backend.outages
        try:
            exit_ = self._follow(handle, ingest, last_line)
        except TimeoutError:
            exit_ = Exit(None, "lost")
        finally:
            self.done.set()
            ingest.flush()
        outage = backend.last if backend.outages > outages_before else None
        if outage is not None:
            seconds, why = outage
            ingest.note(
                "log",
                level="warning",
                message=f"the {self.launcher.backend} did not answer for {seconds:.1f} s "
                f"({self.masker.mask(why)}); the runner's output was read on once it did",
                source="backend-outage",
            )
        ended = outcome(
            RunnerEnded(
                ingest.folded,
                exit_,
                cancelled=self.cancelled,
                timed_out=self.timed_out,
                backend_outage=outage,
                backend=self.launcher.backend,
            )
        )
        failed = ended.status is Status.FAILED and ended.exit_code not in (0, None)
        if failed and ingest.folded.eof is None:  # the runner's own last words
            tail = self.masker.mask(self.launcher.stderr_tail(handle, 20))
            ingest.note("log", level="error", message=tail, source="runner-stderr")
        watchdog.join()  # a terminate in progress ends before the runner is removed
        return ended

    def _follow(self, handle: Handle, ingest: Ingestor, last_line: list[float]) -> Exit:
        """The runner's output to its end, then its exit. A stream that ended before the
        runner's last line (cut by its backend going away) is read once more after the exit.
        A re-attach's read, and a second one, start with the launcher's `recorded` copy: what
        the backend lost from its log is there. Lines read before are skipped by their seq."""
        for read in range(2):
            if read or ingest.last_runner_seq:
                for line in self.launcher.recorded(handle):
                    ingest.line(line)
            for line in self.launcher.stream(handle):
                last_line[0] = self.clock()
                ingest.line(line)
            exit_ = self.launcher.wait(handle, timeout_s=60)
            if ingest.folded.eof is not None or exit_.reason == "lost":
                break
        return exit_

    def _end(self, ingest: Ingestor, handle: Handle | None, ending: Outcome) -> Deployment:
        """The runner removed first, then the deployment concluded."""
        if handle is not None:
            try:
                self.launcher.remove(handle)
            # Any backend error (engine, file system): logged and kept as an event, and the
            # end still recorded; the next start's reconcile removes what is left.
            except Exception as e:  # noqa: BLE001
                log.warning("%s: could not remove %s: %s", self.deployment.id, handle.ref, e)
                ingest.note("log", level="warning", message=f"runner not removed: {e}")
        ingest.flush()
        done = self.deployments.conclude(self.deployment, ending)
        ingest.flush()  # a store outage that ended while it concluded is told too
        self.deployment = done
        return done

    def _flush_while_running(self, ingest: Ingestor) -> None:
        while not self.done.wait(0.05):
            ingest.flush()

    def request_cancel(self) -> None:
        """This replica's cancel: the watchdog acts on its next tick, without the store."""
        self.cancel_requested.set()

    def _watch(self, handle: Handle, start: float, last_line: list[float]) -> None:
        attempts = self.settings.attempts
        polled = start
        while not self.done.wait(0.25):
            now = self.clock()
            reason = None
            if not self.cancel_requested.is_set() and now - polled >= CANCEL_POLL_S:
                polled = now  # another replica's cancel reaches us through the store
                if self.deployments.cancel_requested(self.deployment.id):
                    self.cancel_requested.set()
            store = self.deployments.outages
            if (store is not None and store.down) or self.launcher.watch.down:
                last_line[0] = now  # its output is not being read: not the runner's silence
            if self.cancel_requested.is_set():
                self.cancelled = True
                reason = "cancel requested"
            elif now - start > attempts.deadline_s:
                self.timed_out = reason = f"deadline of {attempts.deadline_s:.0f} s exceeded"
            elif now - last_line[0] > attempts.idle_timeout_s:
                self.timed_out = reason = f"idle: no output for {attempts.idle_timeout_s:.0f} s"
            if reason is not None:
                log.warning("%s: stopping the runner (%s)", self.deployment.id, reason)
                self.launcher.terminate(handle, attempts.cancel_grace_s)
                return
