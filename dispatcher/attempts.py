"""One attempt of one deployment, start to finish: spec, launch, follow, watch, conclude.

Runs on a worker thread. The watchdog (same thread, between lines is not enough: a silent
runner must still be stopped) is a second thread that enforces the deadline, the idle timeout
and cancellation: SIGTERM, a grace period, SIGKILL (the launcher's `terminate`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dispatcher.ingest import Ingestor, derive_status
from dispatcher.launchers.base import Exit, Handle, Launcher, RunSpec
from dispatcher.model import Deployment, Status, StoredEvent
from dispatcher.settings import Settings
from dispatcher.store.base import Store
from runner.events import VERSION, utc_now
from runner.masking import Masker

log = logging.getLogger("forge.dispatcher.attempts")

_SECRET_NAMES = ("GH_TOKEN", "SUPABASE_ACCESS_TOKEN", "VERCEL_TOKEN", "FORGE_SEAL_PRIVATE_KEY")


def runner_args(deployment: Deployment) -> tuple[str, ...]:
    if deployment.action == "teardown":
        return ("teardown", "--name", deployment.project_name)
    return ("deploy", "--name", deployment.project_name)


def resume_lines(events: list[StoredEvent], deployment_id: str) -> str | None:
    """Earlier attempts' runner events as the runner's own JSON lines (its `--resume` input)."""
    lines = [
        json.dumps(
            {
                "v": VERSION,
                "type": e.type,
                "deploy_id": deployment_id,
                "seq": e.runner_seq,
                "ts": e.ts,
                "payload": e.payload,
            }
        )
        for e in events
        if e.runner_seq is not None
    ]
    return "\n".join(lines) + "\n" if lines else None


def build_spec(
    settings: Settings, store: Store, deployment: Deployment, build_dir: Path
) -> RunSpec:
    """What to run for this attempt (pure given the store's answers)."""
    env = {k: v for k, v in settings.runner_env.items() if k not in _SECRET_NAMES}
    secrets = {k: v for k, v in settings.runner_env.items() if k in _SECRET_NAMES}
    env["FORGE_DEPLOY_ID"] = deployment.id
    env["FORGE_SEAL_PUBLIC_KEY"] = settings.seal_public_key
    secrets["FORGE_SEAL_PRIVATE_KEY"] = settings.seal_private_key
    sealed = store.get_sealed(deployment.project_id).get("db_password")
    if sealed:
        env["FORGE_SEALED_DB_PASSWORD"] = sealed  # opaque without the private key
    resume = None
    if deployment.attempt > 1 and deployment.action == "deploy":
        resume = resume_lines(store.events(deployment.id), deployment.id)
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
    ) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self.deployment = deployment
        self.masker = masker
        self.publish = publish
        self.notify = notify
        self.clock = clock
        self.done = threading.Event()
        self.timed_out: str | None = None
        self.cancelled = False

    def _update(self, **fields: Any) -> Deployment:
        sealed = fields.pop("sealed_password", None)
        if sealed:
            self.store.put_sealed(self.deployment.project_id, "db_password", sealed)
        if not fields:
            return self.deployment
        self.deployment = self.store.update(self.deployment.id, **fields)
        self.notify(self.deployment)
        return self.deployment

    def _changed(self, fields: dict[str, Any]) -> None:
        self._update(**fields)

    def run(self, handle: Handle | None = None) -> Deployment:
        """Launch (or, with `handle`, re-attach to) the attempt and see it to its end."""
        dep = self.deployment
        skip = 0
        reattached = handle is not None
        if handle is None:
            spec = build_spec(self.settings, self.store, dep, Path(dep.build_dir))
            for value in spec.secrets.values():
                self.masker.register(value)
            handle = self.launcher.launch(spec)
        else:
            stored = [
                e.runner_seq or 0 for e in self.store.events(dep.id) if e.attempt == dep.attempt
            ]
            skip = max(stored, default=0)
        ingest = Ingestor(
            self.store,
            dep.id,
            dep.attempt,
            self.masker,
            publish=self.publish,
            on_change=self._changed,
            skip_through_seq=skip,
        )
        ingest.note(
            "status",
            status=Status.RUNNING.value,
            launcher=handle.launcher,
            ref=handle.ref,
            reattached=reattached,
        )
        last_line = [self.clock()]
        watchdog = threading.Thread(
            target=self._watch, args=(handle, last_line), name=f"watch-{dep.id}", daemon=True
        )
        watchdog.start()
        try:
            for line in self.launcher.stream(handle):
                last_line[0] = self.clock()
                ingest.line(line)
            exit_ = self.launcher.wait(handle, timeout_s=60)
        except TimeoutError:
            exit_ = Exit(None, "lost")
        finally:
            self.done.set()
            ingest.flush()
        status, error = derive_status(
            ingest.folded,
            exit_,
            cancel_requested=self.cancelled,
            timed_out=self.timed_out,
        )
        if (
            status is Status.FAILED
            and error
            and exit_.code not in (0, None)
            and ingest.folded.eof is None
        ):
            tail = self.masker.mask(self.launcher.stderr_tail(handle, 20))
            ingest.note("log", level="error", message=tail, source="runner-stderr")
        ingest.note("status", status=status.value, error=error, exit_code=exit_.code)
        final = self._update(
            status=status,
            error=error,
            exit_code=exit_.code,
            finished_at=utc_now(),
        )
        self.launcher.remove(handle)
        return final

    def _watch(self, handle: Handle, last_line: list[float]) -> None:
        start = self.clock()
        while not self.done.wait(0.25):
            now = self.clock()
            reason = None
            current = self.store.get(self.deployment.id)
            if current is not None and current.cancel_requested:
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
                self.launcher.terminate(handle, self.settings.cancel_grace_s)
                return
