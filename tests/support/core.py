"""The real dispatcher core for the HTTP API's tests: `Dispatcher` over a store, its workers
not started, so nothing is claimed or launched while the API's actions (cancel, retry,
teardown, live events) go through the real service and its one refusal policy."""

from __future__ import annotations

from pathlib import Path

from dispatcher.core.hub import EventHub
from dispatcher.core.service import Dispatcher
from dispatcher.launchers.process import ProcessLauncher
from dispatcher.settings import Settings
from dispatcher.store.base import Store


def idle_core(
    store: Store, secret: bytes, builds_root: Path, state_dir: Path, hub: EventHub | None = None
) -> Dispatcher:
    settings = Settings(
        hook_secret=secret,
        builds_root=builds_root,
        database_url="(given)",
        launcher="process",
        state_dir=state_dir,
    )
    return Dispatcher(settings, store, ProcessLauncher(state_dir / "runners"), hub=hub)
