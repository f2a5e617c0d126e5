"""The sandbox's Realtime judged by the real clients: supabase-py's realtime client (vsn 1.0.0)
and supabase-js's realtime-js in node (vsn 2.0.0), each signed in as a dashboard user with a
JWT the project's signing key made, on a `postgres_changes` channel of the kit's `deployments`
table filtered by project. The changes are made on the project's real PostgreSQL (its owner
role, psycopg), one transaction holding two updates.

- Alice, whose row it is, receives its insert, updates and delete in commit order, with the
  record, the old record's key and the commit time, and nothing of Bob's row on the same
  project.
- Bob, on the same filter, receives nothing of Alice's row but its delete, which Realtime lets
  through filters and RLS carrying only the primary key (Supabase's documented behaviour).
- Each stream is known complete by a marker row only its reader may see, committed last:
  changes arrive in commit order, so nothing can come after it for the writes before.
- A token's expiry ends a channel; a refreshed token keeps one; heartbeats are answered.
- A table outside the `supabase_realtime` publication streams nothing until it is added.
- The socket passes the same `apikey` gateway as REST.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import ssl
import subprocess
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from tests.forgeboard.conftest import Dashboard
from tests.support.clis import REPO

pytestmark = [pytest.mark.clis, pytest.mark.postgres]
LISTEN_JS = REPO / "tests" / "forgeboard" / "node" / "listen.mjs"
WAIT_S = 60  # a bound on waiting for an event, never a timed assertion
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: a session's Playwright (sync API) keeps an event
    loop running on the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class JsListener:
    process: subprocess.Popen[str]
    lines: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    changes: list[dict[str, Any]] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)

    def next(self, kind: str) -> dict[str, Any]:
        while True:
            line = self.lines.get(timeout=WAIT_S)
            if line["kind"] == "change":
                self.changes.append(line["change"])
            if line["kind"] == "heartbeat":
                self.heartbeats.append(line["status"])
            if line["kind"] == kind:
                return line

    def until(self, predicate: Any) -> None:
        while not any(predicate(c) for c in self.changes):
            self.next("change")

    def refresh(self, token: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(token + "\n")
        self.process.stdin.flush()
        self.next("token")


@pytest.fixture
def js_listener(dashboard: Dashboard) -> Iterator[Any]:
    started: list[JsListener] = []

    def start(token: str, flt: str) -> JsListener:
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": dashboard.ca_file}
        process = subprocess.Popen(
            [
                "node",
                str(LISTEN_JS),
                dashboard.url,
                dashboard.publishable_key,
                token,
                "deployments",
                flt,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        listener = JsListener(process)

        def read() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                listener.lines.put(json.loads(raw))

        threading.Thread(target=read, daemon=True).start()
        started.append(listener)
        assert listener.next("state")["state"] == "SUBSCRIBED"
        assert listener.next("system")["message"]["message"] == "Subscribed to PostgreSQL"
        return listener

    yield start
    for listener in started:
        assert listener.process.stdin is not None
        listener.process.stdin.close()
        try:
            listener.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            listener.process.kill()
            listener.process.wait()


@dataclass
class PyListener:
    client: AsyncClient
    changes: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, predicate: Any) -> None:
        async with asyncio.timeout(WAIT_S):
            while not any(predicate(c) for c in self.changes + self.system):
                self.arrived.clear()
                await self.arrived.wait()


async def py_listener(
    dashboard: Dashboard, token: str, flt: str, monkeypatch: pytest.MonkeyPatch
) -> PyListener:
    """supabase-py's client, its realtime signed in with `token`, subscribed."""
    monkeypatch.setenv("SSL_CERT_FILE", dashboard.ca_file)  # the websocket's TLS (wss)
    verify = ssl.create_default_context(cafile=dashboard.ca_file)
    client = await acreate_client(
        dashboard.url,
        dashboard.publishable_key,
        AsyncClientOptions(httpx_client=httpx.AsyncClient(verify=verify)),
    )
    listener = PyListener(client)
    await client.realtime.set_auth(token)

    def on_change(payload: Any) -> None:
        listener.changes.append(payload["data"])
        listener.arrived.set()

    def on_system(payload: Any) -> None:
        listener.system.append(dict(payload))
        listener.arrived.set()

    channel = client.channel(f"py-{uuid.uuid4().hex[:6]}")
    channel.on_postgres_changes(
        "*", on_change, table="deployments", schema="public", filter=flt
    ).on_system(on_system)
    states: list[str] = []

    def on_state(state: Any, error: Exception | None) -> None:
        # An error `system` message reaches realtime-py's channel as CHANNEL_ERROR.
        states.append(str(state.value))
        if error is not None:
            listener.system.append({"state": str(state.value), **json.loads(str(error))})
            listener.arrived.set()

    await channel.subscribe(on_state)
    assert states == ["SUBSCRIBED"], states
    await listener.until(lambda m: m.get("message") == "Subscribed to PostgreSQL")
    return listener


def _project(dashboard: Dashboard, owner: str) -> str:
    project = f"proj_{uuid.uuid4().hex[:10]}"
    dashboard.client(dashboard.secret_key).table("projects").insert(
        {"id": project, "owner_id": owner, "name": "app", "build_dir": "app"}
    ).execute()
    return project


def _write(dashboard: Dashboard, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """One transaction on the project's database, as its owner."""
    with psycopg.connect(dashboard.db_url) as conn, conn.transaction():
        for statement, params in statements:
            conn.execute(statement, params)


def _insert(row_id: str, project: str, owner: str) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO deployments (id, request_id, project_id, owner_id) VALUES (%s, %s, %s, %s)",
        (row_id, str(uuid.uuid4()), project, owner),
    )


def _update(row_id: str, **fields: Any) -> tuple[str, tuple[Any, ...]]:
    sets = ", ".join(f"{name} = %s" for name in fields)
    return f"UPDATE deployments SET {sets} WHERE id = %s", (*fields.values(), row_id)


def _py_shape(change: dict[str, Any]) -> tuple[str, str, Any]:
    """(type, row id, what changed) of a realtime-py change."""
    if change["type"] == "DELETE":
        return "DELETE", change["old_record"]["id"], sorted(change["old_record"])
    record = change["record"]
    return change["type"], record["id"], (record["status"], record["version"], record["step"])


def _js_shape(change: dict[str, Any]) -> tuple[str, str, Any]:
    if change["eventType"] == "DELETE":
        return "DELETE", change["old"]["id"], sorted(change["old"])
    record = change["new"]
    return change["eventType"], record["id"], (record["status"], record["version"], record["step"])


def test_filtered_changes_arrive_in_order_and_rls_hides_other_rows(
    dashboard: Dashboard, js_listener: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    project = _project(dashboard, alice)
    flt = f"project_id=eq.{project}"
    alice_token, bob_token = dashboard.user_token(alice), dashboard.user_token(bob)
    js_alice = js_listener(alice_token, flt)
    js_bob = js_listener(bob_token, flt)
    row, alice_marker, bob_marker = (str(uuid.uuid4()) for _ in range(3))

    async def scenario() -> tuple[PyListener, PyListener]:
        py_alice = await py_listener(dashboard, alice_token, flt, monkeypatch)
        py_bob = await py_listener(dashboard, bob_token, flt, monkeypatch)
        writes = [
            (_insert(row, project, alice),),
            (_update(row, status="running", version=1),),
            (_update(row, step="github", version=2), _update(row, status="live", version=3)),
            (("DELETE FROM deployments WHERE id = %s", (row,)),),
            (_insert(bob_marker, project, bob),),
            (_insert(alice_marker, project, alice),),
            (_insert(str(uuid.uuid4()), f"other-{project}", alice),),  # another project
        ]
        for statements in writes:
            await asyncio.to_thread(_write, dashboard, *statements)
        await py_alice.until(lambda c: c.get("record", {}).get("id") == alice_marker)
        await py_bob.until(lambda c: c.get("record", {}).get("id") == bob_marker)
        await py_alice.client.realtime.close()
        await py_bob.client.realtime.close()
        return py_alice, py_bob

    py_alice, py_bob = run(scenario())
    js_alice.until(lambda c: c["new"].get("id") == alice_marker)
    js_bob.until(lambda c: c["new"].get("id") == bob_marker)

    expected_alice = [
        ("INSERT", row, ("queued", 0, None)),
        ("UPDATE", row, ("running", 1, None)),
        ("UPDATE", row, ("running", 2, "github")),
        ("UPDATE", row, ("live", 3, "github")),
        ("DELETE", row, ["id"]),  # RLS on: the old record is its primary key only
        ("INSERT", alice_marker, ("queued", 0, None)),
    ]
    assert [_py_shape(c) for c in py_alice.changes] == expected_alice
    assert [_js_shape(c) for c in js_alice.changes] == expected_alice
    expected_bob = [("DELETE", row, ["id"]), ("INSERT", bob_marker, ("queued", 0, None))]
    assert [_py_shape(c) for c in py_bob.changes] == expected_bob
    assert [_js_shape(c) for c in js_bob.changes] == expected_bob

    # Each change carries its commit time; the two updates of one transaction share it.
    stamps = [c["commit_timestamp"] for c in py_alice.changes]
    assert stamps == sorted(stamps) and stamps[2] == stamps[3] and stamps[1] < stamps[2]
    assert all(s.endswith("Z") and "T" in s for s in stamps)
    assert [c["commit_timestamp"] for c in js_alice.changes] == stamps
    # The record is the row as PostgreSQL renders it: jsonb as JSON, text[] as a list.
    inserted = py_alice.changes[0]
    assert inserted["record"]["steps"] == [] and inserted["record"]["log_tail"] == []
    assert inserted["record"]["owner_id"] == alice and inserted["schema"] == "public"
    assert {"name": "steps", "type": "jsonb"} in inserted["columns"]
    assert py_alice.changes[1]["old_record"] == {"id": row}
    assert js_alice.changes[0]["new"]["steps"] == []


def test_an_expired_token_ends_the_channel_and_a_refreshed_one_keeps_it(
    dashboard: Dashboard, js_listener: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = str(uuid.uuid4())
    project = _project(dashboard, alice)
    flt = f"project_id=eq.{project}"
    refreshed = js_listener(dashboard.user_token(alice, expires_in=8), flt)
    refreshed.refresh(dashboard.user_token(alice))  # access_token on the joined channel
    before = str(uuid.uuid4())

    async def scenario() -> PyListener:
        short = await py_listener(dashboard, dashboard.user_token(alice, 8), flt, monkeypatch)
        await asyncio.to_thread(_write, dashboard, _insert(before, project, alice))
        await short.until(lambda m: m.get("status") == "error")
        await short.client.realtime.close()
        return short

    short = run(scenario())
    # The channel worked until its token expired, then Realtime ended it.
    assert [c["record"]["id"] for c in short.changes] == [before]
    ended = next(m for m in short.system if m.get("status") == "error")
    assert ended["state"] == "CHANNEL_ERROR" and ended["extension"] == "system", ended
    assert ended["message"].startswith("Token has expired"), ended
    row = str(uuid.uuid4())
    _write(dashboard, _insert(row, project, alice))
    refreshed.until(lambda c: c["new"].get("id") == row)  # still joined, as alice
    # realtime-js sent a heartbeat every second meanwhile, each answered (else it reconnects).
    assert "ok" in refreshed.heartbeats and "timeout" not in refreshed.heartbeats


def test_only_tables_in_the_publication_are_streamed(
    dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = str(uuid.uuid4())
    project = _project(dashboard, alice)
    table = f"notes_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dashboard.db_url) as conn:
        conn.execute(f"CREATE TABLE public.{table} (id serial PRIMARY KEY, body text)")
        conn.execute(f"GRANT SELECT ON public.{table} TO authenticated")

    def mark() -> str:
        """A row of Alice's deployments, committed after what came before: once it arrives,
        anything before it would have arrived too."""
        row = str(uuid.uuid4())
        _write(dashboard, _insert(row, project, alice))
        return row

    async def scenario() -> list[dict[str, Any]]:
        monkeypatch.setenv("SSL_CERT_FILE", dashboard.ca_file)
        verify = ssl.create_default_context(cafile=dashboard.ca_file)
        client = await acreate_client(
            dashboard.url,
            dashboard.publishable_key,
            AsyncClientOptions(httpx_client=httpx.AsyncClient(verify=verify)),
        )
        await client.realtime.set_auth(dashboard.user_token(alice))
        seen: list[dict[str, Any]] = []
        arrived = asyncio.Event()

        def on_change(payload: Any) -> None:
            seen.append(payload["data"])
            arrived.set()

        ready = asyncio.Event()
        channel = client.channel(f"pub-{table}")
        channel.on_postgres_changes("INSERT", on_change, table=table, schema="public")
        channel.on_postgres_changes(
            "INSERT",
            on_change,
            table="deployments",
            schema="public",
            filter=f"project_id=eq.{project}",
        ).on_system(lambda _: ready.set())
        await channel.subscribe()

        async def until_row(row: str) -> None:
            async with asyncio.timeout(WAIT_S):
                while not any(c.get("record", {}).get("id") == row for c in seen):
                    arrived.clear()
                    await arrived.wait()

        await ready.wait()
        _write(dashboard, (f"INSERT INTO public.{table} (body) VALUES ('unpublished')", ()))
        await until_row(await asyncio.to_thread(mark))
        _write(dashboard, (f"ALTER PUBLICATION supabase_realtime ADD TABLE public.{table}", ()))
        _write(dashboard, (f"INSERT INTO public.{table} (body) VALUES ('published')", ()))
        await until_row(await asyncio.to_thread(mark))
        await client.realtime.close()
        return seen

    seen = run(scenario())
    bodies = [c["record"].get("body") for c in seen if c["table"] == table]
    assert bodies == ["published"], seen


def test_the_socket_passes_the_gateway(dashboard: Dashboard) -> None:
    base = dashboard.url.replace("https://", "wss://") + "/realtime/v1/websocket"
    context = ssl.create_default_context(cafile=dashboard.ca_file)

    async def status_of(url: str, headers: dict[str, str] | None = None) -> int:
        import websockets

        try:
            async with websockets.connect(url, ssl=context, additional_headers=headers):
                return 101
        except websockets.InvalidStatus as e:
            return int(e.response.status_code)

    async def scenario() -> list[int]:
        browser = {"User-Agent": "Mozilla/5.0"}
        return [
            await status_of(f"{base}?vsn=1.0.0"),
            await status_of(f"{base}?apikey=sb_publishable_nope&vsn=1.0.0"),
            await status_of(f"{base}?apikey={dashboard.secret_key}&vsn=1.0.0", browser),
            await status_of(f"{base}?apikey={dashboard.publishable_key}&vsn=9"),
            await status_of(f"{base}?apikey={dashboard.publishable_key}&vsn=2.0.0", browser),
        ]

    assert run(scenario()) == [401, 401, 401, 400, 101]
