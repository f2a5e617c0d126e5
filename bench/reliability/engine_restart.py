"""Dispatcher chaos: the Docker engine restarted mid-deploy. `forge-dispatcher serve` (Docker
launcher, SQLite) on an engine of the suite's own (`engine.Engine`: its own containerd, data and
socket; the machine's engine is never touched), restarted right after a step boundary of a
recorded deploy — gracefully (`systemctl restart docker`: the runner's container is stopped) or
as a crash (SIGKILL: the next daemon's start stops it).

The deployment must end: `live` (the runner had finished), or `failed` saying the Docker engine
restarted under it — and `live` once retried, resuming from its checkpoints. Its stored events
each attempt's seqs 1..n exactly once, one of each resource, the migrations applied once; the
dispatcher's log names the engine outage and its end, and the dispatcher serves a new deploy
afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.reliability import chaos
from bench.reliability.table import Verdict
from bench.reliability.world import World, unique_name
from tests.dispatcher.conftest import Api
from tests.dispatcher.test_e2e_restart import ServeProcess
from tests.support.engine import Engine

KIND = "chaos: Docker engine restart"
IMAGE = "forge-runner:dev"
MODES = ("restart", "crash")
ENGINE_SAYS = "Docker engine"


@dataclass(frozen=True)
class EngineCase:
    signature: str
    mode: str

    @property
    def id(self) -> str:
        how = "SIGKILL the Docker engine" if self.mode == "crash" else "restart the Docker engine"
        return f"{how} after {self.signature}, then start it"


def cases(w: World) -> list[EngineCase]:
    return [EngineCase(c.signature, mode) for c in chaos.record(w) for mode in MODES]


_ENGINES: dict[object, Engine] = {}


def engine(w: World) -> Engine:
    """The world's chaos engine, the runner image in it (made on first use, closed with it)."""
    if w.root not in _ENGINES:
        made = Engine()
        w.later.callback(made.close)
        made.start()
        made.load(IMAGE)
        _ENGINES[w.root] = made
    return _ENGINES[w.root]


def run_case(w: World, case: EngineCase) -> Verdict:
    chaos_engine = engine(w)

    def restart(process: ServeProcess, api: Api) -> None:
        chaos_engine.restart(kill=case.mode == "crash")

    return chaos.disrupted(
        w,
        case.id,
        case.signature,
        restart,
        said,
        retried,
        launcher="docker",
        env_extra={"DOCKER_HOST": chaos_engine.host, "FORGE_RUNNER_IMAGE": IMAGE},
    )


def retried(verdict: Verdict, api: Api, done: dict[str, Any]) -> dict[str, Any]:
    """Failed by the restart: the error names the engine; retried, it must end `live`."""
    if done["status"] != "failed":
        return done
    if ENGINE_SAYS not in str(done.get("error")):
        verdict.other.append(f"failed without naming the Docker engine: {done.get('error')!r}")
    response = api.action(done["id"], "retry")
    if response.status_code not in (200, 202):
        verdict.lost.append(f"retry: {response.status_code} {response.text[:300]}")
        return done
    return api.wait_terminal(done["id"], timeout_s=300)


def said(verdict: Verdict, process: ServeProcess, api: Api, events: list[dict[str, Any]]) -> None:
    """The log names the outage and its end (when an engine call met it); a new deploy runs."""
    log = process.log.read_text(errors="replace")
    if f"{ENGINE_SAYS} unavailable" in log and f"{ENGINE_SAYS} available again" not in log:
        verdict.other.append("the log never says the Docker engine answers again")
    done = api.wait_terminal(chaos.submit(api, unique_name("after")), timeout_s=300)
    if done["status"] != "live":
        verdict.lost.append(f"a deploy after the engine restart ended {done['status']}")
