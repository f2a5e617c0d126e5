"""Per-endpoint request budgets, as Vercel applies them: fixed one-minute windows per token and
endpoint; over budget answers 429 `rate_limited` with `error.limit {remaining, reset, resetMs,
total}` and `X-RateLimit-*` headers. The decision is a pure function of the injected clock."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.ratelimit import FixedWindows

WINDOW_S = 60.0
DEFAULT_BUDGET = 1000  # calls per minute for an endpoint without its own budget
DEPLOY_BUDGET = 100  # POST /v13/deployments
UPLOAD_BUDGET = 5000  # POST /v2/files (the CLI uploads every file of a build in parallel)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    total: int
    remaining: int
    reset_at: float  # epoch seconds when the window ends

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.total),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(math.ceil(self.reset_at)),
        }

    def limit(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "reset": math.ceil(self.reset_at),
            "resetMs": int(self.reset_at * 1000),
            "total": self.total,
        }


class RateLimiter:
    def __init__(self, now: Callable[[], float], window_s: float = WINDOW_S) -> None:
        self._windows = FixedWindows(now, window_s)

    def hit(self, key: str, total: int) -> Decision:
        """Count one call of `key` against `total` per window (refused calls do not count)."""
        window = self._windows.hit(key, total)
        return Decision(window.allowed, total, window.remaining, window.ends_at)
