"""How a step is announced: started, then finished (with what it did), skipped or failed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runner.context import RunContext
from runner.errors import Cancelled
from runner.events import EventType

log = logging.getLogger("forge.runner.steps")


class StepRecord:
    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


@contextmanager
def step(ctx: RunContext, name: str) -> Iterator[StepRecord]:
    ctx.check_cancelled()
    record = StepRecord()
    start = ctx.clock()
    ctx.events.emit(EventType.STEP_STARTED, step=name)
    log.info("%s: started", name)
    try:
        yield record
    except Cancelled:
        ctx.events.emit(EventType.STEP_FAILED, step=name, error="cancelled")
        raise
    except BaseException as e:
        ctx.events.emit(EventType.STEP_FAILED, step=name, error=str(e), kind=type(e).__name__)
        log.error("%s: failed: %s", name, e)
        raise
    elapsed = round(ctx.clock() - start, 3)
    ctx.events.emit(EventType.STEP_FINISHED, step=name, elapsed_s=elapsed, **record.info)
    log.info("%s: finished in %.2f s", name, elapsed)


def skipped(ctx: RunContext, name: str, reason: str) -> None:
    ctx.events.emit(EventType.STEP_SKIPPED, step=name, reason=reason)
    log.info("%s: skipped (%s)", name, reason)
