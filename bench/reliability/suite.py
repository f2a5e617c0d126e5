"""Every kind of case, derived against one world: (kind, cases, how to run one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.reliability import (
    burst,
    chaos,
    crashes,
    engine_restart,
    faults,
    full_disk,
    hostile,
    hostile_api,
    scan,
    soak,
    store_restart,
)
from bench.reliability.dispatchers import running_dispatcher
from bench.reliability.outages import outage_kinds
from bench.reliability.table import Verdict
from bench.reliability.world import World

# Every kind by the prefix `--only` picks it by, in the order the rows are shown.
PREFIXES = (
    *(f"fault: {scenario}" for scenario in faults.SCENARIOS),
    "crash: deploy",
    "chaos: dispatcher",
    store_restart.KIND,
    full_disk.KIND,
    engine_restart.KIND,
    "hostile: runner",
    "hostile: api",
    "secrets",
    "load: burst",
    "load: soak",
)


@dataclass
class Kind:
    name: str
    cases: list[Any]
    run: Callable[[Any], Verdict]
    sampled: bool = True  # False: one pass that yields all its cases (the secret scan)


def _done(verdict: Verdict) -> Verdict:
    return verdict


def _wanted(kind: str, only: list[str]) -> bool:
    return not only or any(kind.startswith(prefix) for prefix in only)


def wanted_prefixes(only: list[str]) -> list[str]:
    """The kinds' prefixes `--only` picks: "fault" picks the three fault kinds, and
    "load: soak 1000" the soak."""
    return [p for p in PREFIXES if _wanted(p, only) or any(o.startswith(p) for o in only)]


def derive(w: World, only: list[str], seed: int, sample: int = 0) -> Iterator[Kind]:
    if any(_wanted(f"fault: {s}", only) for s in faults.SCENARIOS):
        recording = faults.record(w)
        for kind, cases in faults.cases(recording).items():
            if _wanted(kind, only):
                yield Kind(kind, list(cases), partial(_fault, w, recording))
    if _wanted("crash: deploy", only):
        crash_recording = crashes.record(w)
        yield Kind(
            "crash: deploy", crashes.cases(crash_recording), partial(_crash, w, crash_recording)
        )
    if _wanted("chaos: dispatcher", only):
        yield Kind("chaos: dispatcher SIGKILL", chaos.record(w), partial(_chaos, w))
    for name, cases, run in outage_kinds(w, lambda kind: _wanted(kind, only)):
        yield Kind(name, cases, run)
    if _wanted("hostile: runner", only):
        yield Kind("hostile: runner input", hostile.runner_cases(seed), partial(_hostile, w))
    if _wanted("hostile: api", only):
        with running_dispatcher(w, "process", None) as deployer:
            api_cases = hostile_api.generated(deployer, per_operation=20)
            api_cases += hostile_api.crafted(deployer, seed)
        yield Kind("hostile: api requests", api_cases, _done, sampled=False)
    if _wanted("secrets", only):
        yield Kind("secrets: every output", scan.verdicts(w), _done, sampled=False)
    yield from _load(w, only, seed, sample)


def _load(w: World, only: list[str], seed: int, sample: int) -> Iterator[Kind]:
    """The load kinds, one pass each (a case per key / per deploy): full size, or the CI
    sample's smaller one when the run is a sample."""
    requests_n = burst.SAMPLE_REQUESTS if sample else burst.FULL_REQUESTS
    if _wanted(f"load: burst {requests_n}", only):
        verdicts = burst.run(w, requests_n, seed)
        yield Kind(f"load: burst {requests_n} signed requests", verdicts, _done, sampled=False)
    deploys = soak.SAMPLE_DEPLOYS if sample else soak.FULL_DEPLOYS
    if _wanted(f"load: soak {deploys}", only):
        yield Kind(f"load: soak {deploys} deploys", soak.run(w, deploys), _done, sampled=False)


def _chaos(w: World, case: chaos.ChaosCase) -> Verdict:
    return chaos.run_case(w, case)


def _hostile(w: World, case: hostile.RunnerCase) -> Verdict:
    return hostile.run_runner_case(w, case)


def _crash(w: World, recording: crashes.Recording, case: crashes.CrashCase) -> Verdict:
    return crashes.run_case(w, recording, case)


def _fault(w: World, recording: faults.Recording, case: faults.FaultCase) -> Verdict:
    return faults.run_case(w, recording, case)
