"""The Management API's request budget: 120 calls per token per minute, fixed windows.

Recorded real answers carry `x-ratelimit-limit: 120`, `x-ratelimit-remaining` and
`x-ratelimit-reset` (seconds until the window ends, at most 60); going over answers 429 until the
window ends. The decision is a pure function of the injected clock, so it is tested without I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.ratelimit import FixedWindows

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


class RateLimiter:
    """Counts calls per key; a window opens at the first call after the previous one ended."""

    def __init__(
        self, now: Callable[[], float], limit: int = LIMIT, window_s: float = WINDOW_S
    ) -> None:
        self.limit = limit
        self._windows = FixedWindows(now, window_s)

    @property
    def window_s(self) -> float:
        return self._windows.window_s

    @window_s.setter
    def window_s(self, seconds: float) -> None:
        self._windows.window_s = seconds

    def reset(self) -> None:
        """Forget every window: the next call of each key opens a fresh one."""
        self._windows.reset()

    def hit(self, key: str) -> Decision:
        """Count one call for `key` (refused calls are not counted)."""
        window = self._windows.hit(key, self.limit)
        left = window.ends_at - window.now
        reset_s = min(int(window.window_s), max(1, math.ceil(left)))
        return Decision(window.allowed, window.limit, window.remaining, reset_s)
