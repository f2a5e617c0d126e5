"""Dispatcher chaos: its PostgreSQL store restarted mid-deploy. `forge-dispatcher serve`
(process launcher) on a PostgreSQL cluster of its own (the test suite's `ManagedCluster`) whose
server is stopped (fast shutdown: every connection cut) right after a step boundary of a
recorded deploy, kept down a moment, then started again on the same data. The runner goes on
meanwhile; the dispatcher must hold what it could not store, end the deployment `live`, its
stored events the runner's seqs 1..n each exactly once, one of each resource — and say what
happened: the outage and the recovery in its log and in the deployment's events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.reliability import chaos
from bench.reliability.table import Verdict
from bench.reliability.world import World, postgres_cluster, unique_name
from tests.dispatcher.conftest import Api
from tests.dispatcher.test_e2e_restart import ServeProcess

KIND = "chaos: store PostgreSQL restart"
# How long the server stays down: a moment, and longer than a store call waits for a
# connection from its pool (psycopg_pool's 30 s), so that call fails.
DOWN_S = (3.0, 35.0)


@dataclass(frozen=True)
class StoreRestartCase:
    signature: str
    down_s: float

    @property
    def id(self) -> str:
        return f"restart the store's PostgreSQL after {self.signature} (down {self.down_s:g} s)"


def cases(w: World) -> list[StoreRestartCase]:
    return [StoreRestartCase(c.signature, down) for c in chaos.record(w) for down in DOWN_S]


def run_case(w: World, case: StoreRestartCase) -> Verdict:
    root = w.root / unique_name("store-pg")
    root.mkdir()
    root.chmod(0o755)  # the cluster runs as `postgres`
    cluster, url = postgres_cluster(root / "pg")
    try:

        def restart(process: ServeProcess, api: Api) -> None:
            cluster.stop()
            time.sleep(case.down_s)
            cluster.start()

        return chaos.disrupted(w, case.id, case.signature, restart, said, database_url=url)
    finally:
        cluster.stop()


def said(verdict: Verdict, process: ServeProcess, api: Api, events: list[dict[str, Any]]) -> None:
    """The dispatcher named the outage and the recovery, in its log and to the deployment —
    a short outage no store call met as an error too (the pool's check of a kept connection
    tells it)."""
    log = process.log.read_text(errors="replace")
    if "store unavailable" not in log:
        verdict.other.append("the dispatcher's log never names the store outage")
    if "store available again" not in log:
        verdict.other.append("the dispatcher's log never says 'store available again'")
    notes = [
        str(e["payload"].get("message", ""))
        for e in events
        if e["type"] == "log" and e["seq"] is None
    ]
    if not any("store was unavailable" in n for n in notes):
        verdict.other.append("no event of the deployment tells of the store outage")
