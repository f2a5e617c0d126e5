"""Dispatcher chaos: `forge-dispatcher serve` (process launcher, SQLite) SIGKILLed right after
each step boundary of a recorded deploy, then started again on the same state. The runner
outlives it; the new dispatcher must re-attach and end the deployment `live`, its stored events
the runner's seqs 1..n each exactly once, one of each resource, the migrations applied once."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability.table import Verdict
from bench.reliability.world import EXAMPLE, MIGRATIONS, REPO, World, unique_name
from dispatcher.model import TERMINAL
from runner.events import EventType
from tests.dispatcher.conftest import Api, dispatcher_env, process_path
from tests.dispatcher.test_e2e_restart import ServeProcess

BOUNDARIES = (EventType.STEP_STARTED.value, EventType.CHECKPOINT.value, EventType.RESULT.value)


@dataclass(frozen=True)
class ChaosCase:
    signature: str

    @property
    def id(self) -> str:
        return f"SIGKILL the dispatcher after {self.signature}"


def serve(
    w: World,
    root: Path,
    database_url: str | None = None,
    state: Path | None = None,
    launcher: str = "process",
    env_extra: dict[str, str] | None = None,
) -> tuple[ServeProcess, Api]:
    """`forge-dispatcher serve` (`launcher`) on SQLite in its state dir, or on
    `database_url`; its log in the state dir."""
    builds, state = root / "builds", state or root / "state"
    builds.mkdir(parents=True, exist_ok=True)
    state.mkdir(exist_ok=True)
    url = database_url or f"sqlite:///{state / 'dispatcher.db'}"
    env = dispatcher_env(w.sandbox, builds, state, url, launcher)
    env["FORGE_HOOK_SECRET"] = secrets.token_urlsafe(32)
    env.update(PATH=process_path(), HOME=str(root), PYTHONPATH=str(REPO), **(env_extra or {}))
    serve = ServeProcess(env, state / "dispatcher.log")
    serve.start()
    return serve, Api(serve.url, env["FORGE_HOOK_SECRET"].encode(), builds)


def submit(api: Api, name: str) -> str:
    build = api.builds_root / name
    shutil.copytree(EXAMPLE, build)
    response = api.submit(name, name)
    if response.status_code != 202:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    return str(response.json()["id"])


def signatures(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        if e["seq"] is None or e["type"] not in BOUNDARIES:
            continue
        label = e["payload"].get("step") or e["payload"].get("key") or ""
        found.append(f"{e['type']}:{label}" if label else e["type"])
    return found


_RECORDED: dict[Path, list[ChaosCase]] = {}


def record(w: World) -> list[ChaosCase]:
    """The boundaries of one clean deploy through the dispatcher (recorded once per world)."""
    if w.root not in _RECORDED:
        _RECORDED[w.root] = _record(w)
    return _RECORDED[w.root]


def _record(w: World) -> list[ChaosCase]:
    root = w.root / unique_name("chaos-rec")
    process, api = serve(w, root)
    try:
        dep = submit(api, unique_name("chrec"))
        done = api.wait_terminal(dep, timeout_s=300)
        if done["status"] != "live":
            raise RuntimeError(f"the clean dispatcher deploy ended {done}")
        seen: list[str] = []
        for sig in signatures(api.events_jsonl(dep)):
            if sig not in seen:
                seen.append(sig)
        return [ChaosCase(sig) for sig in seen]
    finally:
        process.stop()


def run_case(w: World, case: ChaosCase) -> Verdict:
    def sigkill(process: ServeProcess, api: Api) -> None:
        process.kill()
        process.start()

    return disrupted(w, case.id, case.signature, sigkill)


Check = Callable[[Verdict, ServeProcess, Api, list[dict[str, Any]]], None]
Settle = Callable[[Verdict, Api, dict[str, Any]], dict[str, Any]]


def disrupted(
    w: World,
    case_id: str,
    signature: str,
    disrupt: Callable[[ServeProcess, Api], None],
    check: Check | None = None,
    settle: Settle | None = None,
    **where: Any,
) -> Verdict:
    """One deploy through `forge-dispatcher serve` (`where`: `serve`'s database_url, state),
    `disrupt`ed once its stored events reach `signature`; judged once terminal: `live`, its
    events whole and once, one of each resource; then `check` (the dispatcher's own say).
    `settle` may act on the deployment once terminal (retry it) and return it as it ends."""
    verdict = Verdict(case_id)
    w.reset()
    root = w.root / unique_name("chaos")
    process, api = serve(w, root, **where)
    name = unique_name("chaos")
    try:
        dep = submit(api, name)
        deadline = time.monotonic() + 300
        while signature not in signatures(api.events_jsonl(dep)):
            if api.get(dep)["status"] in TERMINAL or time.monotonic() > deadline:
                verdict.other.append("the deploy ended before the boundary")
                return verdict
            time.sleep(0.05)
        disrupt(process, api)
        try:
            answering(api, dep, timeout_s=300)
            done = api.wait_terminal(dep, timeout_s=300)
            if settle is not None:
                done = settle(verdict, api, done)
        except AssertionError as e:
            verdict.stuck.append(str(e)[:500])
            return verdict
        if done["status"] != "live":
            verdict.lost.append(f"ended {done['status']}: {done.get('error')}")
        events = api.events_jsonl(dep)
        judge_events(verdict, events)
        if check is not None:
            check(verdict, process, api, events)
    finally:
        process.stop()
    judge_resources(verdict, w, name)
    return verdict


def answering(api: Api, dep: str, timeout_s: float) -> None:
    """Once the API answers for `dep` again: a 503 (its store unavailable) says "try again"."""
    deadline = time.monotonic() + timeout_s
    while api.request("GET", f"/v1/deployments/{dep}").status_code == 503:
        if time.monotonic() > deadline:
            raise AssertionError(f"the API answered 503 for {timeout_s:g} s")
        time.sleep(0.2)


def judge_resources(verdict: Verdict, w: World, name: str) -> None:
    """One of each resource of app `name`, its migrations applied once."""
    for resource, n in w.count(name).items():
        if n > 1:
            verdict.duplicated.append(f"{n} {resource}")
        elif n < 1:
            verdict.lost.append(f"no {resource}")
    if w.migrations(name) != [MIGRATIONS]:
        verdict.lost.append(f"migrations applied: {w.migrations(name)}")


def judge_events(verdict: Verdict, events: list[dict[str, Any]]) -> None:
    ids = [e["id"] for e in events]
    if ids != list(range(1, len(ids) + 1)):
        verdict.duplicated.append("stored event ids are not 1..n once each")
    for attempt in sorted({e["attempt"] for e in events}):
        seqs = [e["seq"] for e in events if e["attempt"] == attempt and e["seq"] is not None]
        if len(set(seqs)) != len(seqs):
            verdict.duplicated.append(f"attempt {attempt}: a runner event stored twice")
        if sorted(set(seqs)) != list(range(1, len(set(seqs)) + 1)):
            missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
            around = [
                f"{e['seq']} {e['type']}"
                for e in events
                if e["attempt"] == attempt
                and e["seq"] is not None
                and any(abs(e["seq"] - m) <= 2 for m in missing)
            ]
            verdict.lost.append(
                f"attempt {attempt}: runner events missing: seqs {missing[:10]} of 1..{max(seqs)}"
                f" (stored around them: {', '.join(around[:12])})"
            )
    runner_events = [e for e in events if e["seq"] is not None]
    if not runner_events or runner_events[-1]["type"] != EventType.EOF.value:
        verdict.lost.append("the runner's eof is not the last runner event stored")
