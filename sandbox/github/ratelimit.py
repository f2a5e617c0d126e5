"""GitHub's primary rate limit: an hourly budget per token and resource, counted for real.

Every authenticated REST call costs one point of the `core` budget (5,000 an hour), every
GraphQL call one point of `graphql`; `GET /rate_limit` is free. The window starts with the
first counted call and resets an hour later. Failed authentications count against the
unauthenticated budget of the caller's address (60 an hour), as on GitHub, but still answer 401.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.ratelimit import FixedWindows, Window

WINDOW_S = 3600
AUTHENTICATED_LIMIT = 5000
UNAUTHENTICATED_LIMIT = 60
SEARCH_LIMIT = 30
RESOURCES = ("core", "graphql")


@dataclass
class Budget:
    limit: int
    used: int = 0
    reset: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def as_json(self) -> dict[str, int]:
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reset": self.reset,
        }


@dataclass(frozen=True)
class Outcome:
    """What one call did to its budget: the headers to send and whether it may proceed."""

    resource: str
    budget: Budget
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.budget.limit),
            "x-ratelimit-remaining": str(self.budget.remaining),
            "x-ratelimit-reset": str(self.budget.reset),
            "x-ratelimit-used": str(self.budget.used),
            "x-ratelimit-resource": self.resource,
        }


class RateLimiter:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._windows = FixedWindows(now, WINDOW_S)

    @staticmethod
    def _outcome(resource: str, window: Window) -> Outcome:
        budget = Budget(window.limit, window.used, math.ceil(window.ends_at))
        return Outcome(resource, budget, window.allowed)

    def spend(self, key: str, resource: str, limit: int = AUTHENTICATED_LIMIT) -> Outcome:
        """Count one call; over the limit it is not allowed and nothing more is counted."""
        return self._outcome(resource, self._windows.hit(f"{key}|{resource}", limit))

    def peek(self, key: str, resource: str, limit: int = AUTHENTICATED_LIMIT) -> Outcome:
        """The budget as it stands, without counting (GET /rate_limit)."""
        return self._outcome(resource, self._windows.peek(f"{key}|{resource}", limit))

    def overview(self, key: str) -> dict[str, object]:
        """The `/rate_limit` body: every resource GitHub lists, `rate` mirroring `core`."""
        core = self.peek(key, "core").budget.as_json()
        graphql = self.peek(key, "graphql").budget.as_json()
        minute = math.ceil(self._now()) + 60
        search = Budget(SEARCH_LIMIT, 0, minute).as_json()
        resources: dict[str, object] = {
            "core": core,
            "graphql": graphql,
            "search": search,
            "code_search": Budget(10, 0, minute).as_json(),
            "integration_manifest": Budget(AUTHENTICATED_LIMIT, 0, core["reset"]).as_json(),
            "source_import": Budget(100, 0, minute).as_json(),
            "code_scanning_upload": Budget(1000, 0, core["reset"]).as_json(),
            "actions_runner_registration": Budget(10000, 0, core["reset"]).as_json(),
            "scim": Budget(15000, 0, core["reset"]).as_json(),
            "dependency_snapshots": Budget(100, 0, minute).as_json(),
        }
        return {"resources": resources, "rate": core}
