"""The real front door of the dispatcher's core for the web layer's tests: `Deployments` over a
store, with no workers of its own, so nothing is claimed or launched while the API's and the
pages' actions (cancel, retry, teardown, live events) go through the real service and its one
refusal policy."""

from __future__ import annotations

from pathlib import Path

from dispatcher.core.deployments import Deployments
from dispatcher.core.hub import EventHub
from dispatcher.core.ports import Store


def idle_core(store: Store, builds_root: Path, hub: EventHub | None = None) -> Deployments:
    return Deployments(store, builds_root=builds_root, hub=hub)
