"""The dispatcher assembled: the front door (`deployments`, what the adapters hold) and this
replica's `workers`, over one store and one launcher. `start` migrates the store and starts
the workers (reconcile first); `stop` stops them, leaving running attempts to the next start.

Who is told of changes (the status callbacks, the ForgeBoard mirror) is given as `listeners`;
they are adapters, started and stopped by whoever assembles them (`dispatcher.embedded`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dispatcher.core.deployments import Deployments, Listener
from dispatcher.core.hub import EventHub
from dispatcher.core.ports import Launcher, Store
from dispatcher.core.secrets import masker_for
from dispatcher.core.workers import Workers
from dispatcher.settings import Settings
from runner.events import utc_now


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        launcher: Launcher,
        hub: EventHub | None = None,
        listeners: Sequence[Listener] = (),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self.masker = masker_for(settings.runner.env, [settings.runner.seal_private_key])
        self.deployments = Deployments(
            store, builds_root=settings.hook.builds_root, hub=hub, listeners=listeners, now=now
        )
        self.workers = Workers(self.deployments, launcher, settings, self.masker, clock)
        self.deployments.queue = self.workers

    def start(self) -> None:
        self.store.migrate()
        self.workers.start()

    def stop(self) -> None:
        self.workers.stop()
