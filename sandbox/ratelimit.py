"""Fixed-window request counting, shared by the three emulators.

A window opens at a key's first call (or the first after the previous window ended) and lasts
`window_s`; calls refused for being over the limit are not counted. Each provider formats its
own headers and error bodies from the `Window` it gets back. The clock is injected, so the
decisions are tested without waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One key's window as a call left it."""

    allowed: bool
    limit: int
    used: int
    started: float
    window_s: float
    now: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def ends_at(self) -> float:
        return self.started + self.window_s


class FixedWindows:
    def __init__(self, now: Callable[[], float], window_s: float) -> None:
        self._now = now
        self.window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _current(self, key: str, now: float) -> tuple[float, int]:
        started, used = self._windows.get(key, (now, 0))
        if now >= started + self.window_s or now < started:
            started, used = now, 0
        return started, used

    def hit(self, key: str, limit: int) -> Window:
        """Count one call of `key` against `limit`; over the limit it is refused, uncounted."""
        with self._lock:
            now = self._now()
            started, used = self._current(key, now)
            allowed = used < limit
            if allowed:
                used += 1
            self._windows[key] = (started, used)
            return Window(allowed, limit, used, started, self.window_s, now)

    def peek(self, key: str, limit: int) -> Window:
        """The window as it stands, without counting."""
        with self._lock:
            now = self._now()
            started, used = self._current(key, now)
            self._windows[key] = (started, used)
            return Window(True, limit, used, started, self.window_s, now)

    def reset(self) -> None:
        """Forget every window: each key's next call opens a fresh one."""
        with self._lock:
            self._windows.clear()
