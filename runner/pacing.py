"""Spend a provider's request budget evenly instead of running into its 429.

Every successful answer of GitHub, Supabase and Vercel says how many calls are left in the
current window (`x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`). While more
than a fifth of the budget is left, calls go out at once; below that, each waits its share of the
time left (`left / (remaining + 1)`), and with nothing left it waits for the window to end. So a
tight poll loop, or many deploys sharing one token, slows down before the provider refuses it
(Supabase refuses the rest of the minute after 120 calls).

A budget is one per token (`shared`: Supabase, GitHub) or one per endpoint (Vercel's windows are
per token and endpoint, so one endpoint's exhaustion must not slow another). The waits are the
provider's facts, not backoff: `FORGE_BACKOFF_SCALE` does not shorten them. Pure decisions over
an injected clock; the caller sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

RESERVE_FRACTION = 0.2  # below this share of the budget left, calls are spread out
MIN_RESERVE = 2


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    ends_at: float  # epoch seconds when the window resets

    @property
    def reserve(self) -> int:
        return max(MIN_RESERVE, int(self.limit * RESERVE_FRACTION))

    def wait(self, now: float) -> float:
        """Seconds the next call should wait: 0 while the budget is comfortable."""
        left = self.ends_at - now
        if left <= 0 or self.remaining > self.reserve:
            return 0.0
        if self.remaining <= 0:
            return left
        return left / (self.remaining + 1)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def reset_in(value: object, now: float) -> float | None:
    """A reset time as seconds from now. GitHub and Vercel send epoch seconds (or
    milliseconds); Supabase sends the seconds left in the window. A value too small to be a
    date is the latter."""
    try:
        reset = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if reset > 1e12:  # epoch milliseconds
        reset /= 1000
    if reset < 1e9:  # seconds left, not a date
        return max(0.0, reset)
    return max(0.0, reset - now)


def budget_from(headers: Mapping[str, str], now: float) -> Budget | None:
    """The budget an answer's headers state, or None when they do not state one. The reset is
    epoch seconds (GitHub, Vercel) or seconds left in the window (Supabase)."""
    limit = _int(headers.get("x-ratelimit-limit"))
    remaining = _int(headers.get("x-ratelimit-remaining"))
    left = reset_in(headers.get("x-ratelimit-reset"), now)
    if limit is None or remaining is None or left is None or limit <= 0:
        return None
    return Budget(limit, remaining, now + left)


class Pacer:
    """The latest budget per key (the whole provider, or one method and path)."""

    def __init__(self, shared: bool) -> None:
        self.shared = shared
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()

    def _key(self, method: str, path: str) -> str:
        return "" if self.shared else f"{method} {path}"

    def observe(self, method: str, path: str, headers: Mapping[str, str], now: float) -> None:
        budget = budget_from(headers, now)
        if budget is not None:
            with self._lock:
                self._budgets[self._key(method, path)] = budget

    def wait(self, method: str, path: str, now: float) -> tuple[float, Budget | None]:
        """How long the next call should wait, and the budget that says so. The wait is
        charged at once (one call fewer left), so parallel callers spread out too."""
        key = self._key(method, path)
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None:
                return 0.0, None
            delay = budget.wait(now)
            if delay > 0:
                self._budgets[key] = Budget(budget.limit, budget.remaining - 1, budget.ends_at)
            return delay, budget
