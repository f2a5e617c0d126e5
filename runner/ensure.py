"""The one shape of every create: look, adopt or refuse, create, and look again when unsure.

`ensure(find, create)` returns what `find` finds (after checking it is ours) or what `create`
makes. A create whose outcome is unknown (timeout, reset, 5xx) or that answers "already
exists" is never simply repeated: the next round looks first, so a retried create cannot make a
second resource.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from runner.errors import AmbiguousError, FatalError, RetryableError
from runner.http import RetryPolicy, Sleep, retrying

log = logging.getLogger("forge.runner.ensure")

T = TypeVar("T")


class AlreadyExists(RetryableError):
    """The create raced with an earlier (ambiguous) create of ours: look again."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, 409, message, delay=0.0)


def _again(error: BaseException) -> bool:
    return isinstance(error, AmbiguousError | AlreadyExists) or (
        isinstance(error, RetryableError) and not isinstance(error, FatalError)
    )


def ensure(
    what: str,
    find: Callable[[], T | None],
    create: Callable[[], T],
    policy: RetryPolicy,
    sleep: Sleep,
) -> tuple[T, bool]:
    """(resource, created). `find` raises `NotOurs` for a resource that is not ours."""
    created = False

    def round_() -> T:
        nonlocal created
        found = find()
        if found is not None:
            return found
        log.info("creating %s", what)
        created = True  # even if the answer is lost, this run made it
        return create()

    for attempt in retrying(policy, sleep, _again):
        with attempt:
            return round_(), created
    raise AssertionError("unreachable")  # pragma: no cover
