"""The fault matrix: every provider call of a recorded clean deploy, redeploy, revival and
teardown, times every fault kind, each case one fresh app against the sandbox. The revival is a
redeploy of an app whose Supabase project was paused (a week idle) and whose secret key was
deleted: it restores the project and makes a `forge_deploy` secret key, so those calls are in
the matrix too.

A transient kind must end as the clean run did (`live`, or `removed` for a teardown) with
exactly the resources the clean run left; a permanent kind (a 403 that is not GitHub's
rate limit) must end `failed` with the provider's message, and never with a second resource —
or, where the runner has a documented way around the refusal (Supabase's partner-only
migration history falls back to a query), as the clean run did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability import runs
from bench.reliability.table import Verdict
from bench.reliability.traffic import Call, calls
from bench.reliability.world import MIGRATIONS, World, unique_name
from tests.support.runner import TEST_KNOBS, RunnerProcess
from tests.support.supabase_api import Management

CLIENT_TIMEOUT_S = float(TEST_KNOBS["FORGE_HTTP_TIMEOUT_S"])
SCENARIOS = ("deploy", "redeploy", "revive", "teardown")
SANDBOX_MESSAGE = "fault injected by the sandbox"


def _rate_limited_403() -> dict[str, Any]:
    reset = str(int(time.time()) + 1)
    return {
        "action": "status",
        "status": 403,
        "headers": {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
    }


KINDS: dict[str, Callable[[], dict[str, Any]]] = {
    "500": lambda: {"action": "status", "status": 500},
    "502": lambda: {"action": "status", "status": 502},
    "503": lambda: {"action": "status", "status": 503},
    "429+retry-after": lambda: {"action": "status", "status": 429, "retry_after": 1},
    "403+ratelimit-0": _rate_limited_403,
    "reset": lambda: {"action": "reset"},
    "delay>timeout": lambda: {"action": "delay", "delay_s": CLIENT_TIMEOUT_S + 1.5},
    "timeout_after_success": lambda: {"action": "timeout_after_success"},
}


def permanent(kind: str, call: Call) -> bool:
    """Only GitHub says "rate limited" with a 403; from Supabase or Vercel it is a refusal."""
    return kind == "403+ratelimit-0" and call.service in ("supabase", "vercel")


@dataclass(frozen=True)
class Recording:
    """One clean run of each scenario: its calls and the resources it left."""

    calls: dict[str, list[Call]]
    expected: dict[str, dict[str, int]]


def record(w: World) -> Recording:
    """Each scenario run cleanly after what a case runs before it: deploy, redeploy and teardown
    one after the other on one app; the revival on an app of its own right after its first
    deploy (as a revive case runs it), so its resources are what a case should leave."""
    found: dict[str, list[Call]] = {}
    expected: dict[str, dict[str, int]] = {}

    def recorded(scenario: str, name: str, build: Path, runner: RunnerProcess) -> None:
        start = len(w.sandbox.traffic())
        _clean(runner, scenario, name, build)
        found[scenario] = calls(w.sandbox.traffic(), name, start, w.accounts())
        expected[scenario] = w.count(name)

    name = unique_name("rec")
    build, runner = w.build(name), w.runner(w.root / "work" / name)
    for scenario in ("deploy", "redeploy", "teardown"):
        if scenario == "redeploy":
            (build / "public" / "build.txt").write_text(f"{name} v2")
        recorded(scenario, name, build, runner)
    revived = unique_name("rev")
    build, runner = w.build(revived), w.runner(w.root / "work" / revived)
    _clean(runner, "deploy", revived, build)
    (build / "public" / "build.txt").write_text(f"{revived} v2")
    paused_without_secret_key(w, revived)
    recorded("revive", revived, build, runner)
    return Recording({s: found[s] for s in SCENARIOS}, expected)


def _clean(runner: RunnerProcess, scenario: str, name: str, build: Path) -> None:
    result = runs.run(runner, _args(scenario, name, build))
    if result.returncode != 0:
        raise RuntimeError(f"the clean {scenario} of {name} failed:\n{result.tail()}")


def paused_without_secret_key(w: World, name: str) -> None:
    """The app's project paused, as Supabase pauses an idle free project, and its secret keys
    deleted, as an owner rotating keys might: the next deploy restores it and makes its own."""
    [ref] = [
        p["ref"] for p in w.sandbox.resources()["supabase"]["projects"]
        if p["name"] == f"forge-{name}"
    ]  # fmt: skip
    api = Management(w.sandbox)
    for key in api("GET", f"/v1/projects/{ref}/api-keys").json():
        if key["type"] == "secret":
            api("DELETE", f"/v1/projects/{ref}/api-keys/{key['id']}").raise_for_status()
    w.sandbox.admin("POST", f"supabase/projects/{ref}/pause").raise_for_status()


def _args(scenario: str, name: str, build: Any) -> list[str]:
    if scenario == "teardown":
        return ["teardown", "--name", name]
    return ["deploy", "--build-dir", str(build), "--name", name]


@dataclass(frozen=True)
class FaultCase:
    scenario: str
    call: Call
    kind: str

    @property
    def id(self) -> str:
        return f"{self.scenario} | {self.call.label} | {self.kind}"


def cases(recording: Recording) -> dict[str, list[FaultCase]]:
    return {
        f"fault: {scenario}": [
            FaultCase(scenario, call, kind) for call in recording.calls[scenario] for kind in KINDS
        ]
        for scenario in SCENARIOS
    }


def run_case(w: World, recording: Recording, case: FaultCase) -> Verdict:
    verdict = Verdict(case.id)
    name = unique_name(case.scenario[:3])
    build = w.build(name)
    runner = w.runner(w.root / "work" / name)
    if case.scenario != "deploy":  # the app exists, deployed cleanly, before the faulted run
        first = runs.run(runner, _args("deploy", name, build))
        if first.returncode != 0:
            verdict.other.append(f"the clean first deploy failed: {first.tail()}")
            return verdict
        (build / "public" / "build.txt").write_text(f"{name} v2")
        if case.scenario == "revive":
            paused_without_secret_key(w, name)
    before = w.count(name)
    rule = case.call.rule(name) | KINDS[case.kind]() | {"times": 1}
    w.sandbox.set_faults([rule])
    result = runs.run(runner, _args(case.scenario, name, build))
    hits = w.sandbox.admin("GET", "faults").json()[0]["hits"]
    w.reset()
    runs.check(verdict, result, w.secrets())
    if hits == 0:
        verdict.other.append("the faulted call was never made: the case proved nothing")
    counts = w.count(name)
    expected = recording.expected[case.scenario]
    if permanent(case.kind, case.call) and result.outcome not in ("live", "removed"):
        _judge_permanent(verdict, result, counts, before, expected, case)
    else:
        _judge_transient(verdict, result, counts, expected, case, w.migrations(name))
    return verdict


def _judge_transient(
    verdict: Verdict,
    result: runs.Run,
    counts: dict[str, int],
    expected: dict[str, int],
    case: FaultCase,
    migrations: list[list[str]],
) -> None:
    want = "removed" if case.scenario == "teardown" else "live"
    # A failed health check is answered with a new build, by design; the result says how many.
    health = result.result.get("health") or {}
    rebuilt = int(health.get("redeploys", 0)) if isinstance(health, dict) else 0
    expected = {**expected, "deployment": expected["deployment"] + rebuilt}
    if result.outcome != want and result.returncode is not None:
        error = result.result.get("error", "")
        verdict.lost.append(f"ended {result.outcome!r}, not {want!r}: {error} {result.tail()}")
    for resource, n in counts.items():
        if n > expected[resource]:
            column = verdict.leaked if case.scenario == "teardown" else verdict.duplicated
            column.append(f"{n} {resource} (the clean run left {expected[resource]})")
        elif n < expected[resource]:
            verdict.lost.append(f"{n} {resource} (the clean run left {expected[resource]})")
    if case.scenario != "teardown" and migrations != [MIGRATIONS]:
        verdict.lost.append(f"migrations applied: {migrations}")


def _judge_permanent(
    verdict: Verdict,
    result: runs.Run,
    counts: dict[str, int],
    before: dict[str, int],
    expected: dict[str, int],
    case: FaultCase,
) -> None:
    error = str(result.result.get("error", ""))
    if result.outcome != "failed":
        verdict.lost.append(f"ended {result.outcome!r}, not 'failed' on a permanent 403")
    elif f"{case.call.service} 403" not in error or SANDBOX_MESSAGE not in error:
        verdict.lost.append(f"failed without the provider's message: {error!r}")
    ceiling = {k: max(before[k], expected[k]) for k in counts}
    for resource, n in counts.items():
        if n > ceiling[resource]:
            verdict.duplicated.append(f"{n} {resource} (at most {ceiling[resource]} expected)")
