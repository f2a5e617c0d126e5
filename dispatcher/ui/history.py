"""The events of the deployments the pages show, each read from the store and made into its log
line once: a page opened again, its summary refreshes (every step change) and its download read
only the events after the last one kept. A deployment's events are appended in id order, one
write at a time (the store counts them on its row), and never change, which the event stream's
resuming after an id relies on too: what is kept stays true. At most `max_events` are kept, the
deployments looked at longest ago dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from dispatcher.model import StoredEvent
from dispatcher.ui import views

PAGE = 10_000  # events read per store call
MAX_EVENTS = 200_000


@dataclass(frozen=True)
class Read:
    events: tuple[StoredEvent, ...]
    lines: tuple[views.LogLine, ...]

    @property
    def last_id(self) -> int:
        return self.events[-1].id if self.events else 0


class History:
    def __init__(
        self, read: Callable[[str, int, int], list[StoredEvent]], max_events: int = MAX_EVENTS
    ) -> None:
        self.read = read  # (deployment id, after id, limit) -> the events, oldest first
        self.max_events = max_events
        self.kept: OrderedDict[str, Read] = OrderedDict()
        self.lock = threading.Lock()

    def of(self, deployment_id: str) -> Read:
        """Every event of the deployment so far, and its log lines."""
        with self.lock:
            known = self.kept.get(deployment_id, Read((), ()))
        new: list[StoredEvent] = []
        while page := self.read(deployment_id, new[-1].id if new else known.last_id, PAGE):
            new += page
            if len(page) < PAGE:
                break
        found = Read(known.events + tuple(new), known.lines + tuple(views.log_lines(new)))
        with self.lock:
            current = self.kept.pop(deployment_id, None)
            if current is not None and current.last_id > found.last_id:
                found = current  # another request read further meanwhile
            self.kept[deployment_id] = found
            total = sum(len(r.events) for r in self.kept.values())
            while total > self.max_events and len(self.kept) > 1:
                _, dropped = self.kept.popitem(last=False)
                total -= len(dropped.events)
        return found
