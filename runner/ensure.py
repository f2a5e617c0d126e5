"""The one shape of every create: look, adopt or refuse, create, and look again when unsure.

`ensure(find, create)` returns what `find` finds (after checking it is ours) or what `create`
makes. A create whose outcome is unknown (timeout, reset, 5xx) or that answers "already
exists" is never simply repeated: the next round looks first, so a retried create cannot make a
second resource. A create whose answer was lost may still be at work on the provider's side (a
slow server finishes what the client gave up on): after one, a look that finds nothing is
repeated for the `Settle` window before the next create, so that late create is found, not doubled.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from runner.errors import AmbiguousError, FatalError, RetryableError
from runner.http import RetryPolicy, Sleep, retrying

log = logging.getLogger("forge.runner.ensure")

T = TypeVar("T")


class AlreadyExists(RetryableError):
    """The create raced with an earlier (ambiguous) create of ours: look again."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(provider, 409, message, delay=0.0)


@dataclass(frozen=True)
class Settle:
    """How long to keep looking, after a create whose answer was lost, before creating again:
    `window_s` of real time (the provider's work, not a backoff: never scaled), a look every
    `poll_s`."""

    window_s: float = 0.0
    poll_s: float = 1.0
    clock: Callable[[], float] = time.monotonic


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
    settle: Settle | None = None,
) -> tuple[T, bool]:
    """(resource, created). `find` raises `NotOurs` for a resource that is not ours."""
    created = False
    unsure = False  # the last create's answer was lost: it may still land
    settle = settle or Settle()

    def look() -> T | None:
        found = find()
        if found is not None or not unsure:
            return found
        deadline = settle.clock() + settle.window_s
        if settle.window_s > 0:
            log.info("%s: not there after a lost answer; looking for %.0f s", what, settle.window_s)
        # At most window / poll looks, however the sleep is made: an injected sleep that does
        # not advance the clock must not turn the window into a tight loop of provider calls.
        looks = math.ceil(settle.window_s / settle.poll_s) if settle.poll_s > 0 else 0
        while found is None and looks > 0 and settle.clock() < deadline:
            looks -= 1
            sleep(settle.poll_s)
            found = find()
        return found

    def round_() -> T:
        nonlocal created, unsure
        found = look()
        if found is not None:
            return found
        log.info("creating %s", what)
        created = True  # even if the answer is lost, this run made it
        unsure = False
        try:
            return create()
        except AmbiguousError:
            unsure = True
            raise

    for attempt in retrying(policy, sleep, _again):
        with attempt:
            return round_(), created
    raise AssertionError("unreachable")  # pragma: no cover
