"""What may be done to a deployment now: the one refusal policy. The service asks it before it
acts, the API turns its answer into a 409, the page greys out a button with it."""

from __future__ import annotations

from enum import StrEnum

from dispatcher.core.errors import Refused
from dispatcher.model import RETRYABLE, TERMINAL, Deployment


class Action(StrEnum):
    CANCEL = "cancel"
    RETRY = "retry"
    TEARDOWN = "teardown"


def refusal(action: Action, dep: Deployment) -> Refused | None:
    """Why `action` is refused for `dep` now, or None."""
    if action is Action.CANCEL and dep.status in TERMINAL:
        return Refused("not_cancellable", f"deployment {dep.id} is already {dep.status.value}")
    if action is Action.RETRY and dep.status not in RETRYABLE:
        return Refused(
            "not_retryable",
            f"deployment {dep.id} is {dep.status.value}; only failed, cancelled or unhealthy "
            "deployments can be retried",
        )
    return None


def check(action: Action, dep: Deployment) -> None:
    """Raise the refusal, if any."""
    refused = refusal(action, dep)
    if refused is not None:
        raise refused
