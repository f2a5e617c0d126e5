"""The dispatcher's PostgreSQL store restarted mid-deploy (issue 13, "Dispatcher chaos").

A dispatcher (process launcher) on a PostgreSQL cluster of its own; once the deploy has
started its steps the server is stopped (fast shutdown: every connection cut) and kept down
longer than a store call waits for a pooled connection (30 s), so store calls fail; then it is
started again on the same data. Before, the failed flush dropped its batch of events and the
flusher, watchdog and claim threads died: the deployment stayed `running` with events missing
and nothing was claimed again. Now the deployment ends `live`, its stored events are the
runner's seqs 1..n each exactly once, the deployment's own events tell of the outage, the log
says "store unavailable" and "store available again" once each, and a next deploy is claimed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispatcher.core.errors import StoreUnavailable
from dispatcher.core.outages import StoreWatch
from dispatcher.store.postgres import RECONNECT_WINDOW_S, PostgresStore
from sandbox.postgres import ManagedCluster, PostgresServer, free_port
from tests.dispatcher.conftest import RunningDispatcher

DOWN_S = 35.0  # longer than psycopg_pool's 30 s wait for a connection


@pytest.fixture
def own_cluster(test_root: Path, unique: str) -> Iterator[tuple[ManagedCluster, str]]:
    """A PostgreSQL cluster for this test alone (the session's serves the sandbox)."""
    cluster = ManagedCluster(test_root / f"store-pg-{unique}", "127.0.0.1", free_port("127.0.0.1"))
    server = cluster.start()
    with server.admin() as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD 'pw-{unique}'")
    try:
        yield cluster, f"postgresql://postgres:pw-{unique}@127.0.0.1:{server.port}/postgres"
    finally:
        cluster.stop()


@pytest.mark.clis
@pytest.mark.postgres
def test_a_store_restart_mid_deploy_ends_live_with_every_event_once(
    own_cluster: tuple[ManagedCluster, str],  # first: stopped after the dispatcher
    start_dispatcher: Callable[..., RunningDispatcher],
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, url = own_cluster
    e2e = start_dispatcher(FORGE_DATABASE_URL=url)
    dep = e2e.deploy(f"sr-{unique}")["id"]
    e2e.wait(dep, lambda d: d["status"] == "running" and d["step"] is not None, 120)
    with caplog.at_level(logging.WARNING, "forge.dispatcher.store"):
        cluster.stop()
        time.sleep(DOWN_S)  # the outage itself, not a wait for a result
        cluster.start()
        deadline = time.monotonic() + 300
        while e2e.request("GET", f"/v1/deployments/{dep}").status_code == 503:  # "try again"
            assert time.monotonic() < deadline, "the API still answers 503"
            time.sleep(0.2)
        done = e2e.wait_terminal(dep, 300)
        assert done["status"] == "live", done
        again = e2e.deploy(f"sr2-{unique}")["id"]  # the claim loop survived
        assert e2e.wait_terminal(again, 300)["status"] == "live"

    events = e2e.events_jsonl(dep)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    seqs = [e["seq"] for e in events if e["seq"] is not None]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert events[-1]["type"] == "status" and events[-1]["payload"]["status"] == "live"
    notes = [str(e["payload"].get("message")) for e in events if e["type"] == "log"]
    told = [n for n in notes if n.startswith("the store was unavailable for ")]
    assert told and "PostgreSQL" in told[0], notes
    said = [r.getMessage() for r in caplog.records if r.name == "forge.dispatcher.store"]
    assert [m.split(":")[0].split(" after")[0] for m in said] == [
        "store unavailable",
        "store available again",
    ], said


@pytest.mark.postgres
def test_a_restart_no_store_call_met_is_told_by_the_pools_check(
    own_cluster: tuple[ManagedCluster, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A restart between two calls: no call fails (the pool's check drops the broken connection
    and connects anew), yet the log says the store was unavailable and is again. Before, only
    psycopg_pool's own warnings told of it, and not always."""
    cluster, url = own_cluster
    store = PostgresStore(url, max_size=2)
    watch = StoreWatch()
    store.on_connection_lost(watch.noticed)
    try:
        store.migrate()
        with caplog.at_level(logging.WARNING, "forge.dispatcher.store"):
            cluster.stop()
            cluster.start()
            assert watch.call(lambda: store.get("dep_" + "0" * 24), "reading") is None
    finally:
        store.close()
    said = [r.getMessage() for r in caplog.records if r.name == "forge.dispatcher.store"]
    assert [m.split(":")[0].split(" after")[0] for m in said] == [
        "store unavailable",
        "store available again",
    ], said
    assert said[0].startswith("store unavailable: PostgreSQL: "), said
    assert watch.outages == 1


@pytest.mark.postgres
def test_the_store_reconnects_by_itself_soon_after_a_long_outage(
    own_cluster: tuple[ManagedCluster, str],
) -> None:
    """psycopg_pool doubles its wait between connection attempts with no cap: a server back
    after 35 s was reconnected about 25 s later. The store's pool starts its attempts over
    each `RECONNECT_WINDOW_S`, so a server back is reconnected within a few seconds, with no
    store call to prompt it (seen from the server: a `forge-dispatcher` session appears)."""
    cluster, url = own_cluster
    store = PostgresStore(url)
    try:
        cluster.stop()
        caller = threading.Thread(target=_a_call_that_meets_the_outage, args=(store,))
        caller.start()  # it finds the kept connection broken: the pool starts reconnecting
        time.sleep(DOWN_S)  # the outage itself, not a wait for a result
        server = cluster.start()
        caller.join()
        bound = 4 * RECONNECT_WINDOW_S  # the old policy's next attempt: some 25 s away
        deadline = time.monotonic() + bound
        while not _store_sessions(server):
            assert time.monotonic() < deadline, f"not reconnected {bound:g} s after the restart"
            time.sleep(0.2)
    finally:
        store.close()


def _a_call_that_meets_the_outage(store: PostgresStore) -> None:
    with contextlib.suppress(StoreUnavailable):  # the pool timed out: the store says so
        store.get("none")


def _store_sessions(server: PostgresServer) -> int:
    with server.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'forge-dispatcher'"
        ).fetchone()
    return int(row[0]) if row else 0
