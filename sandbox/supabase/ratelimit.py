"""The Management API's request budget: 120 calls per token per minute, fixed windows.

Recorded real answers carry `x-ratelimit-limit: 120`, `x-ratelimit-remaining` and
`x-ratelimit-reset` (seconds until the window ends, at most 60); going over answers 429 until the
window ends. The decision is a pure function of the injected clock, so it is tested without I/O.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

LIMIT = 120
WINDOW_S = 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # whole seconds until the window ends, 1..60

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset_s),
        }


@dataclass
class _Window:
    started: float
    used: int


class RateLimiter:
    """Counts calls per key; a window opens at the first call after the previous one ended."""

    def __init__(
        self, now: Callable[[], float], limit: int = LIMIT, window_s: float = WINDOW_S
    ) -> None:
        self._now = now
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every window: the next call of each key opens a fresh one."""
        with self._lock:
            self._windows.clear()

    def hit(self, key: str) -> Decision:
        """Count one call for `key` (refused calls are not counted)."""
        with self._lock:
            now = self._now()
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window_s or now < window.started:
                window = _Window(started=now, used=0)
                self._windows[key] = window
            left = window.started + self.window_s - now
            reset_s = min(int(self.window_s), max(1, math.ceil(left)))
            if window.used >= self.limit:
                return Decision(False, self.limit, 0, reset_s)
            window.used += 1
            return Decision(True, self.limit, self.limit - window.used, reset_s)
