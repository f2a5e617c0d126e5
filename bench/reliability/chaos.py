"""Dispatcher chaos: `forge-dispatcher serve` (process launcher, SQLite) SIGKILLed right after
each step boundary of a recorded deploy, then started again on the same state. The runner
outlives it; the new dispatcher must re-attach and end the deployment `live`, its stored events
the runner's seqs 1..n each exactly once, one of each resource, the migrations applied once."""

from __future__ import annotations

import secrets
import shutil
import time
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


def _serve(w: World, root: Path) -> tuple[ServeProcess, Api]:
    builds, state = root / "builds", root / "state"
    builds.mkdir(parents=True, exist_ok=True)
    state.mkdir(exist_ok=True)
    env = dispatcher_env(
        w.sandbox, builds, state, f"sqlite:///{state / 'dispatcher.db'}", "process"
    )
    env["FORGE_HOOK_SECRET"] = secrets.token_urlsafe(32)
    env.update(PATH=process_path(), HOME=str(root), PYTHONPATH=str(REPO))
    serve = ServeProcess(env, root / "dispatcher.log")
    serve.start()
    return serve, Api(serve.url, env["FORGE_HOOK_SECRET"].encode(), builds)


def _submit(api: Api, name: str) -> str:
    build = api.builds_root / name
    shutil.copytree(EXAMPLE, build)
    response = api.submit(name, name)
    if response.status_code != 202:
        raise RuntimeError(f"submit: {response.status_code} {response.text}")
    return str(response.json()["id"])


def _signatures(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        if e["seq"] is None or e["type"] not in BOUNDARIES:
            continue
        label = e["payload"].get("step") or e["payload"].get("key") or ""
        found.append(f"{e['type']}:{label}" if label else e["type"])
    return found


def record(w: World) -> list[ChaosCase]:
    root = w.root / unique_name("chaos-rec")
    serve, api = _serve(w, root)
    try:
        dep = _submit(api, unique_name("chrec"))
        done = api.wait_terminal(dep, timeout_s=300)
        if done["status"] != "live":
            raise RuntimeError(f"the clean dispatcher deploy ended {done}")
        seen: list[str] = []
        for sig in _signatures(api.events_jsonl(dep)):
            if sig not in seen:
                seen.append(sig)
        return [ChaosCase(sig) for sig in seen]
    finally:
        serve.stop()


def run_case(w: World, case: ChaosCase) -> Verdict:
    verdict = Verdict(case.id)
    w.reset()
    root = w.root / unique_name("chaos")
    serve, api = _serve(w, root)
    name = unique_name("chaos")
    try:
        dep = _submit(api, name)
        deadline = time.monotonic() + 300
        while case.signature not in _signatures(api.events_jsonl(dep)):
            if api.get(dep)["status"] in TERMINAL or time.monotonic() > deadline:
                verdict.other.append("the deploy ended before the boundary")
                return verdict
            time.sleep(0.05)
        serve.kill()
        serve.start()
        try:
            done = api.wait_terminal(dep, timeout_s=300)
        except AssertionError as e:
            verdict.stuck.append(str(e)[:500])
            return verdict
        if done["status"] != "live":
            verdict.lost.append(f"ended {done['status']}: {done.get('error')}")
        _judge_events(verdict, api.events_jsonl(dep))
    finally:
        serve.stop()
    for resource, n in w.count(name).items():
        if n > 1:
            verdict.duplicated.append(f"{n} {resource}")
        elif n < 1:
            verdict.lost.append(f"no {resource}")
    if w.migrations(name) != [MIGRATIONS]:
        verdict.lost.append(f"migrations applied: {w.migrations(name)}")
    return verdict


def _judge_events(verdict: Verdict, events: list[dict[str, Any]]) -> None:
    ids = [e["id"] for e in events]
    if ids != list(range(1, len(ids) + 1)):
        verdict.duplicated.append("stored event ids are not 1..n once each")
    for attempt in sorted({e["attempt"] for e in events}):
        seqs = [e["seq"] for e in events if e["attempt"] == attempt and e["seq"] is not None]
        if len(set(seqs)) != len(seqs):
            verdict.duplicated.append(f"attempt {attempt}: a runner event stored twice")
        if sorted(set(seqs)) != list(range(1, len(set(seqs)) + 1)):
            verdict.lost.append(f"attempt {attempt}: runner events missing")
    runner_events = [e for e in events if e["seq"] is not None]
    if not runner_events or runner_events[-1]["type"] != EventType.EOF.value:
        verdict.lost.append("the runner's eof is not the last runner event stored")
