"""Benchmark: the ForgeBoard status mirror against a dashboard project on a zero-latency sandbox.

One run starts a throwaway sandbox (its own PostgreSQL), makes a dashboard project with the kit's
`deployments` table (through the Management API's SQL endpoint), a SQLite dispatcher store with
N deployments the dashboard queued (each with a realistic event history), and prints:

1. one row write (supabase-py `update ... eq id ... lt version`) p50/p95;
2. the first full round (`Mirror.sync_once`: N rows written): rows/s;
3. an idle round (nothing changed: no write, one store listing) and a round after one
   deployment changed (one new event, one write);
4. the catch-up after an outage: N deployments change while the dashboard answers 503, then
   the first round after it is back;
5. what a dashboard's panel waits for: a row write (as the mirror makes it) until supabase-py's
   realtime client receives it over the sandbox's Realtime (the sandbox's own cluster, wal2json
   read every 50 ms), p50/p95 over 50 writes.

The machine is shared: the load average is printed with the numbers.

    .venv/bin/python bench/mirror.py [--deployments N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatcher.core.deployments import Deployments  # noqa: E402
from dispatcher.core.ports import NewEvent  # noqa: E402
from dispatcher.mirror.rows import idempotency_key  # noqa: E402
from dispatcher.mirror.worker import Mirror  # noqa: E402
from dispatcher.mirror.writer import Writer, WriterSettings  # noqa: E402
from dispatcher.model import Patch, Status  # noqa: E402
from dispatcher.store.open import open_store  # noqa: E402
from runner.masking import Masker  # noqa: E402
from tests.support.sandbox import SandboxProcess  # noqa: E402
from tests.support.supabase_api import Management, project_entry  # noqa: E402

KIT_SQL = sorted((REPO / "integrations" / "forgeboard" / "migrations").glob("*.sql"))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def dashboard(sandbox: SandboxProcess) -> tuple[str, str, str]:
    """(project URL, service key, ref) of a new project with the kit's table."""
    api = Management(sandbox)
    ref = api.create(f"bench-{uuid.uuid4().hex[:6]}")
    api.wait_status(ref)
    entry: dict[str, Any] | None = None
    while not (entry and entry["keys"]["secret"]):
        entry = project_entry(sandbox, ref)
        time.sleep(0.05)
    for path in KIT_SQL:
        api.query(ref, path.read_text())
    url = sandbox.info["supabase"]["project_url"].replace("{ref}", ref)
    return url, entry["keys"]["secret"], ref  # the legacy service_role JWT is disabled today


def realtime_delays(url: str, key: str, ca_file: str, writer: Writer, row_id: str) -> list[float]:
    """Seconds from each of 50 writes of `row_id` returning to its UPDATE reaching a realtime
    client (supabase-py's, on its own thread and loop, subscribed before the first write)."""
    from supabase import AsyncClientOptions, acreate_client

    os.environ["SSL_CERT_FILE"] = ca_file  # the websocket's TLS
    arrived: dict[int, float] = {}
    ready, stop = threading.Event(), threading.Event()

    async def listen() -> None:
        client = await acreate_client(url, key, AsyncClientOptions())
        channel = client.channel("bench")
        channel.on_postgres_changes(
            "UPDATE",
            lambda p: arrived.setdefault(p["data"]["record"]["version"], time.perf_counter()),
            table="deployments",
            schema="public",
            filter=f"id=eq.{row_id}",
        ).on_system(lambda _: ready.set())
        await channel.subscribe()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await client.realtime.close()

    thread = threading.Thread(target=asyncio.run, args=(listen(),), daemon=True)
    thread.start()
    assert ready.wait(60), "realtime never subscribed"
    written: dict[int, float] = {}
    for v in range(10**15, 10**15 + 50):  # above any version the mirror wrote
        writer.write(row_id, {"version": v})
        written[v] = time.perf_counter()
        for _ in range(2000):  # one write in flight at a time: wait for its delivery
            if v in arrived:
                break
            time.sleep(0.001)
    stop.set()
    thread.join(30)
    return [arrived[v] - written[v] for v in written if v in arrived]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deployments", type=int, default=200)
    args = parser.parse_args()
    n = args.deployments
    root = Path(tempfile.mkdtemp(prefix="forge-bench-mirror-", dir="/var/tmp"))
    root.chmod(0o755)
    sandbox = SandboxProcess(root / "sandbox", None, time_scale=0.0001)
    sandbox.start()
    try:
        url, service_key, ref = dashboard(sandbox)
        # No backoff sleep: the outage round below fails fast instead of waiting out retries.
        writer = Writer(WriterSettings(url, service_key, ca_file=sandbox.ca_file), lambda _: None)
        store = open_store(f"sqlite:///{root / 'dispatcher.db'}")
        store.migrate()
        owner = str(uuid.uuid4())
        ids = []
        for i in range(n):
            created = (
                writer.client.table("deployments")
                .insert({"request_id": f"r{i}", "project_id": "p", "owner_id": owner})
                .execute()
            )
            row_id = created.data[0]["id"]
            dep, _ = store.submit(f"p{i}", f"bench-{i}", "/b", idempotency_key(row_id))
            events = [NewEvent(1, "step_started", "2026-12-06T10:00:00.000Z", {"step": "github"})]
            events += [
                NewEvent(
                    1, "log", "2026-12-06T10:00:00.000Z", {"level": "info", "message": f"l{j}"}
                )
                for j in range(100)
            ]
            store.append_events(dep.id, events)
            store.update(dep.id, Patch(status=Status.RUNNING, step="github"))
            ids.append((dep.id, row_id))

        single = []
        probe = ids[0][1]
        for v in range(1, 201):
            start = time.perf_counter()
            writer.write(probe, {"version": v})
            single.append(time.perf_counter() - start)

        front = Deployments(store, builds_root=root)
        mirror = Mirror(front, writer, Masker(), scan_limit=n + 10)
        start = time.perf_counter()
        assert mirror.sync_once()
        full = time.perf_counter() - start
        start = time.perf_counter()
        mirror.sync_once()
        idle = time.perf_counter() - start
        store.append_events(
            ids[-1][0], [NewEvent(1, "log", "2026-12-06T10:00:01.000Z", {"message": "x"})]
        )
        start = time.perf_counter()
        mirror.sync_once()
        one = time.perf_counter() - start

        rest = f"^/sb/{ref}/rest/v1/deployments"
        sandbox.set_faults([{"service": "apps", "path": rest, "action": "status", "times": 10**6}])
        for dep_id, _ in ids:
            store.update(dep_id, Patch(status=Status.LIVE, step="health"))
        assert not mirror.sync_once()
        sandbox.set_faults([])
        start = time.perf_counter()
        assert mirror.sync_once()
        catch_up = time.perf_counter() - start
        live = writer.client.table("deployments").select("id").eq("status", "live").execute()
        assert len(live.data) == n, len(live.data)
        delays = realtime_delays(url, service_key, sandbox.ca_file, writer, probe)
        assert len(delays) == 50, f"{50 - len(delays)} writes never reached the realtime client"
        writer.close()
        store.close()
    finally:
        sandbox.stop()
    print(
        json.dumps(
            {
                "load_average": os.getloadavg(),
                "deployments": n,
                "row_write_p50": ms(statistics.median(single)),
                "row_write_p95": ms(p95(single)),
                "first_round": ms(full),
                "first_round_rows_per_s": round(n / full),
                "idle_round": ms(idle),
                "one_change_round": ms(one),
                "catch_up_round_after_outage": ms(catch_up),
                "catch_up_rows_per_s": round(n / catch_up),
                "write_to_realtime_p50": ms(statistics.median(delays)),
                "write_to_realtime_p95": ms(p95(delays)),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
