"""The dispatcher's core, for tests that need no PostgreSQL, no sandbox and no runner process:

- `idle_core(store, builds_root)`: the real front door (`Deployments`) with no workers, for the
  web layer's tests: the API's and the pages' actions go through the real service and its one
  refusal policy while nothing is claimed or launched;
- `CoreWorld`: the real `Dispatcher` (front door and workers) over a real SQLite store in a
  temporary file, a `FakeClock` and a `FakeLauncher` that plays scripted runners. A test runs
  an attempt on its own thread (`run_next`) and reads what the core wrote.

The fakes stand only where the real part cannot run in a core test: the runner (a launcher
playing its output) and time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dispatcher.core.deployments import Deployments
from dispatcher.core.hub import EventHub
from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec, Store
from dispatcher.core.service import Dispatcher
from dispatcher.model import TERMINAL, Deployment, Status, StoredEvent
from dispatcher.settings import (
    AttemptSettings,
    HookSettings,
    RunnerSettings,
    Settings,
    StoreSettings,
)
from dispatcher.store.sqlite import SQLiteStore
from runner.checkpoints import SEALED_DB_PASSWORD
from runner.events import VERSION, Event, EventType

TOKEN = "ghp_coreTEST0secret0token0000000000"  # a runner secret the dispatcher must mask
SEAL_PRIVATE = "c2VhbHRlc3Qwc2VjcmV0MHByaXZhdGUwa2V5MDA="
START = datetime(2026, 1, 1, tzinfo=UTC)


def idle_core(store: Store, builds_root: Path, hub: EventHub | None = None) -> Deployments:
    return Deployments(store, builds_root=builds_root, hub=hub)


class FakeClock:
    """Time that moves only when a test says: `monotonic()` for the watchdog, `iso()` for the
    events and rows, `now()` for the store."""

    def __init__(self) -> None:
        self.t = 0.0
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def monotonic(self) -> float:
        with self._lock:
            return self.t

    def now(self) -> datetime:
        return START + timedelta(seconds=self.monotonic())

    def iso(self) -> str:
        return self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def line(seq: int, kind: EventType, **payload: Any) -> str:
    """One runner event line, as the runner writes it."""
    return Event(VERSION, kind, "d", seq, "2026-01-01T00:00:00.000Z", payload).to_json()


def runner_lines(outcome: str = "live", error: str | None = None) -> list[str]:
    """A runner's whole output: a step, a URL, a sealed value, its result and its eof."""
    code = {"live": 0, "failed": 1, "unhealthy": 3, "cancelled": 4}[outcome]
    result: dict[str, Any] = {"outcome": outcome, "urls": {"app": "https://shop.example"}}
    if error is not None:
        result["error"] = error
    return [
        line(1, EventType.STEP_STARTED, step="github.repo"),
        line(2, EventType.CHECKPOINT, key="github.repo_url", value="https://git.example/shop"),
        line(3, EventType.CHECKPOINT, key=SEALED_DB_PASSWORD, value="sealed-1"),
        line(4, EventType.RESULT, **result),
        line(5, EventType.EOF, outcome=outcome, exit_code=code),
    ]


@dataclass
class Run:
    """What the next launched runner does: writes `lines`, then (with `hold`) stays silent
    until it is stopped, and exits as `exit` (stopped: 143, killed)."""

    lines: list[str] = field(default_factory=runner_lines)
    exit: Exit = field(default_factory=lambda: Exit(0))
    hold: bool = False
    stderr: str = ""
    launch_error: Exception | None = None


class FakeLauncher(Launcher):
    """Plays scripted runners (`runs`, in launch order; a live deploy when none is left)."""

    name = "fake"
    backend = "fake engine"

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.launched: list[RunSpec] = []
        self.terminated: list[Handle] = []
        self.removed: list[Handle] = []
        self.streaming = threading.Event()  # a runner's output is being read
        self._live: dict[str, tuple[Handle, Run, threading.Event]] = {}
        self._lock = threading.Lock()

    def adopt(self, handle: Handle, run: Run) -> None:
        """A runner this launcher finds running at start (an earlier dispatcher's)."""
        with self._lock:
            self._live[handle.ref] = (handle, run, threading.Event())

    def _get(self, handle: Handle) -> tuple[Handle, Run, threading.Event]:
        with self._lock:
            return self._live[handle.ref]

    def launch(self, spec: RunSpec) -> Handle:
        run = self.runs.pop(0) if self.runs else Run()
        if run.launch_error is not None:
            raise run.launch_error
        with self._lock:
            self.launched.append(spec)
            handle = Handle(
                self.name, spec.deployment_id, spec.attempt, f"box-{len(self.launched)}"
            )
        self.adopt(handle, run)
        return handle

    def stream(self, handle: Handle) -> Iterator[str]:
        _, run, stopped = self._get(handle)
        self.streaming.set()
        yield from run.lines
        if run.hold:
            stopped.wait(60)

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        _, run, stopped = self._get(handle)
        if run.hold and not stopped.wait(timeout_s):
            raise TimeoutError(f"{handle.ref} still runs")
        return Exit(143, "killed") if stopped.is_set() else run.exit

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        return self._get(handle)[1].stderr

    def terminate(self, handle: Handle, grace_s: float) -> None:
        self.terminated.append(handle)
        self._get(handle)[2].set()

    def remove(self, handle: Handle) -> None:
        self.removed.append(handle)
        with self._lock:
            self._live.pop(handle.ref, None)

    def running(self) -> list[Handle]:
        with self._lock:
            return [handle for handle, _, _ in self._live.values()]

    def health(self) -> str | None:
        return None


class RecordingHub(EventHub):
    """The hub, with every event it published kept."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[StoredEvent] = []

    def publish_all(self, events: Iterable[StoredEvent]) -> None:
        events = list(events)
        self.published.extend(events)
        super().publish_all(events)


class CoreWorld:
    """The real dispatcher core over SQLite, a fake clock and a fake launcher."""

    def __init__(self, tmp_path: Path, store: Store | None = None) -> None:
        self.builds = tmp_path / "builds"
        (self.builds / "shop").mkdir(parents=True, exist_ok=True)
        self.clock = FakeClock()
        self.store = store or SQLiteStore(tmp_path / "dispatcher.db", clock=self.clock.now)
        self.launcher = FakeLauncher()
        self.hub = RecordingHub()
        self.told: list[tuple[str, Status]] = []
        self.ended = threading.Condition()
        self.settings = Settings(
            hook=HookSettings(b"k" * 32, self.builds),
            store=StoreSettings(f"sqlite:///{tmp_path / 'dispatcher.db'}"),
            state_dir=tmp_path,
            attempts=AttemptSettings(
                max_concurrent=2,
                deadline_s=60,
                idle_timeout_s=30,
                cancel_grace_s=0,
                replica_id="core",
            ),
            runner=RunnerSettings(
                env={"GH_TOKEN": TOKEN, "GH_ORG": "acme"},
                seal_public_key="public-key",
                seal_private_key=SEAL_PRIVATE,
            ),
        )
        self.dispatcher = Dispatcher(
            self.settings,
            self.store,
            self.launcher,
            hub=self.hub,
            listeners=[self._told],
            clock=self.clock.monotonic,
            now=self.clock.iso,
        )
        self.store.migrate()

    def _told(self, deployment: Deployment) -> None:
        with self.ended:
            self.told.append((deployment.id, deployment.status))
            self.ended.notify_all()

    @property
    def front(self) -> Deployments:
        return self.dispatcher.deployments

    def submit(self, key: str | None = None, **kwargs: Any) -> Deployment:
        dep, _ = self.front.submit("p1", "shop", "shop", key, **kwargs)
        return dep

    def run_next(self) -> Deployment:
        done = self.dispatcher.workers.run_next()
        assert done is not None, "nothing was claimed"
        return done

    def start_next(self) -> threading.Thread:
        """`run_next` on a thread of its own, returned once the runner's output is read."""
        self.launcher.streaming.clear()
        thread = threading.Thread(target=self.run_next, daemon=True)
        thread.start()
        assert self.launcher.streaming.wait(30), "the attempt did not start"
        return thread

    def statuses(self, deployment_id: str) -> list[Status]:
        """The statuses the listeners were told of, in order, repeats dropped."""
        told = [status for dep, status in self.told if dep == deployment_id]
        return [s for i, s in enumerate(told) if i == 0 or told[i - 1] is not s]

    def wait_ended(self, deployment_id: str, timeout_s: float = 30) -> Deployment:
        """Once a listener was told the deployment ended (a thread of the workers ran it)."""
        with self.ended:
            ok = self.ended.wait_for(
                lambda: any(d == deployment_id and s in TERMINAL for d, s in self.told), timeout_s
            )
        assert ok, f"{deployment_id} did not end: {self.statuses(deployment_id)}"
        return self.front.get(deployment_id)

    def close(self) -> None:
        self.dispatcher.stop()
        self.store.close()
