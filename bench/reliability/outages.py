"""Dispatcher chaos, the dispatcher's own resources failing under it (issue 13): its
PostgreSQL store restarted mid-deploy, its state dir full, its Docker engine restarted. Each
kind: (name, cases, run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bench.reliability import engine_restart, full_disk, store_restart
from bench.reliability.table import Verdict
from bench.reliability.world import World

OutageKind = tuple[str, list[Any], Callable[[Any], Verdict]]


def outage_kinds(w: World, wanted: Callable[[str], bool]) -> Iterator[OutageKind]:
    if wanted(store_restart.KIND):
        yield store_restart.KIND, list(store_restart.cases(w)), partial(store_restart.run_case, w)
    if wanted(full_disk.KIND):
        yield full_disk.KIND, list(full_disk.cases(w)), partial(full_disk.run_case, w)
    if wanted(engine_restart.KIND):
        run = partial(engine_restart.run_case, w)
        yield engine_restart.KIND, list(engine_restart.cases(w)), run
