"""SIGKILL the runner (and everything it started) right after each event of a recorded clean
deploy; a new run handed the killed run's events and the seal keys must end `live` with one
of each resource and the migrations applied once.

An event is named by its type, its step or checkpoint key, and its occurrence: "after the 2nd
`step_finished` of `vercel.build`". Events whose count depends on timing (heartbeats, progress,
logs) are taken at their first occurrence only, so every boundary is reached in every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.reliability import runs
from bench.reliability.table import Verdict
from bench.reliability.world import MIGRATIONS, World, unique_name
from runner.events import Event, EventType
from runner.sealing import new_keypair

TIMING_DEPENDENT = (EventType.HEARTBEAT, EventType.STEP_PROGRESS, EventType.LOG)


def signature(event: Event) -> str:
    label = event.payload.get("step") or event.payload.get("key") or ""
    return f"{event.type.value}:{label}" if label else event.type.value


@dataclass(frozen=True)
class CrashCase:
    signature: str
    occurrence: int  # 1-based
    index: int  # the event's place in the recorded run

    @property
    def id(self) -> str:
        return f"kill after event {self.index} ({self.signature} #{self.occurrence})"

    def reached(self) -> _Counter:
        return _Counter(self)


class _Counter:
    def __init__(self, case: CrashCase) -> None:
        self.case = case
        self.seen = 0

    def __call__(self, n: int, event: Event) -> bool:
        if signature(event) == self.case.signature:
            self.seen += 1
        return self.seen == self.case.occurrence


@dataclass(frozen=True)
class Recording:
    events: list[Event]
    expected: dict[str, int]


def _keys() -> dict[str, str]:
    public, private = new_keypair()
    return {"FORGE_SEAL_PUBLIC_KEY": public, "FORGE_SEAL_PRIVATE_KEY": private}


def record(w: World) -> Recording:
    name = unique_name("crec")
    runner = w.runner(w.root / "work" / name)
    result = runs.run(
        runner, ["deploy", "--build-dir", str(w.build(name)), "--name", name], _keys()
    )
    if result.outcome != "live":
        raise RuntimeError(f"the clean deploy failed:\n{result.tail()}")
    return Recording(result.events, w.count(name))


def cases(recording: Recording) -> list[CrashCase]:
    seen: dict[str, int] = {}
    found = []
    for index, event in enumerate(recording.events, start=1):
        if event.type is EventType.EOF:
            continue
        sig = signature(event)
        seen[sig] = seen.get(sig, 0) + 1
        if event.type in TIMING_DEPENDENT and seen[sig] > 1:
            continue
        found.append(CrashCase(sig, seen[sig], index))
    return found


def run_case(w: World, recording: Recording, case: CrashCase) -> Verdict:
    verdict = Verdict(case.id)
    name = unique_name("crash")
    build = w.build(name)
    runner = w.runner(w.root / "work" / name)
    keys = _keys()
    args = ["deploy", "--build-dir", str(build), "--name", name]
    reached = case.reached()
    killed = runs.run(runner, args, keys, stop_after=reached)
    secrets = w.secrets()
    runs.check(verdict, killed, secrets, killed=True)
    if reached.seen < case.occurrence:
        verdict.other.append(f"the run ended before the boundary: {killed.tail()}")
        return verdict
    resume = runs.write_events(w.root / "work" / name / "attempt-1.jsonl", killed)
    resumed = runs.run(runner, [*args, "--resume", str(resume)], keys)
    runs.check(verdict, resumed, w.secrets())
    if resumed.outcome != "live" and resumed.returncode is not None:
        verdict.lost.append(f"the resumed run ended {resumed.outcome!r}: {resumed.tail()}")
    for resource, n in w.count(name).items():
        want = recording.expected[resource]
        if n > want:
            verdict.duplicated.append(f"{n} {resource} (the clean run left {want})")
        elif n < want:
            verdict.lost.append(f"{n} {resource} (the clean run left {want})")
    migrations = w.migrations(name)
    if migrations != [MIGRATIONS]:
        verdict.lost.append(f"migrations applied: {migrations}")
    return verdict
