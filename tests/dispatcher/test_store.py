"""The dispatcher's store against real databases: a fresh SQLite file and a fresh PostgreSQL
database (in the test run's cluster) per test, the same behaviour expected of both."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from dispatcher.core.errors import Conflict, InvalidTransition, StoreError, UnknownDeployment
from dispatcher.core.ports import NewEvent, Store
from dispatcher.model import Patch, Status
from dispatcher.store.open import open_store
from dispatcher.store.postgres import PostgresStore
from dispatcher.store.schema import (
    MigrationError,
    load_migrations,
    pending,
    split_sqlite_script,
)
from dispatcher.store.sqlite import SQLiteStore
from runner.checkpoints import SEALED_DB_PASSWORD

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

DEPLOYMENT_COLUMNS = {
    "id", "seq", "queue_seq", "project_id", "project_name", "build_dir", "action", "status",
    "attempt", "step", "app_url", "repo_url", "database_url", "health", "error", "exit_code",
    "idempotency_key", "request_hash", "owner", "created_at", "updated_at", "started_at",
    "finished_at", "cancel_requested", "claimed_by", "last_event_id", "queue_head",
    "exposure_policy",
}  # fmt: skip
TABLE_COLUMNS = {
    "deployments": DEPLOYMENT_COLUMNS,
    "events": {"deployment_id", "id", "attempt", "type", "ts", "payload", "runner_seq"},
    "sealed_secrets": {"project_id", "key", "sealed", "updated_at"},
    "hook_signatures": {"signature", "expires_at"},
    "schema_migrations": {"version", "name", "checksum", "applied_at"},
}


def _with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


@dataclass
class Backend:
    """One fresh database; `open()` gives another store on it (another replica)."""

    name: str
    url: str
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store = open_store(self.url)
        self.opened.append(store)
        return store

    def query(self, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Raw SQL as the tables' owner; `?` placeholders (rewritten for psycopg)."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                return conn.execute(text, params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cursor = pg.execute(text.replace("?", "%s").encode(), params)
            return cursor.fetchall() if cursor.description else []

    def columns(self, table: str) -> set[str]:
        if self.name == "sqlite":
            rows = self.query("SELECT name FROM pragma_table_info(?)", (table,))
        else:
            rows = self.query(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = ?",
                (table,),
            )
        return {r[0] for r in rows}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        handle = Backend("sqlite", f"sqlite:///{tmp_path / 'store.db'}")
        yield handle
        for store in handle.opened:
            store.close()
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    dbname = f"store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    handle = Backend("postgres", _with_dbname(admin_url, dbname))
    try:
        yield handle
    finally:
        for store in handle.opened:
            store.close()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))


@pytest.fixture
def store(backend: Backend) -> Store:
    opened = backend.open()
    opened.migrate()
    return opened


def _parallel(count: int, work: Callable[[int], None]) -> None:
    """Run work(0..count-1) in threads released together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    if failures:
        raise failures[0]


def _event(n: int, attempt: int = 1) -> NewEvent:
    return NewEvent(
        attempt=attempt,
        type="log",
        ts="2026-01-01T00:00:00.000Z",
        payload={"level": "info", "message": f"line {n}"},
        runner_seq=n,
    )


# -- migrations -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_migrate_twice_is_a_no_op(backend: Backend) -> None:
    store = backend.open()
    store.migrate()
    first = backend.query("SELECT version, name, checksum, applied_at FROM schema_migrations")
    store.submit("p1", "app", "/builds/a", "k1")
    store.migrate()
    backend.open().migrate()
    assert backend.query("SELECT version, name, checksum, applied_at FROM schema_migrations") == (
        first
    )
    dialect = "sqlite" if backend.name == "sqlite" else "postgres"
    assert sorted(r[0] for r in first) == [m.version for m in load_migrations(dialect)]
    assert len(store.list_deployments()) == 1


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_concurrent_migrate_from_two_replicas(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    _parallel(2, lambda i: replicas[i].migrate())
    rows = backend.query("SELECT version FROM schema_migrations")
    assert sorted(r[0] for r in rows) == [m.version for m in load_migrations(backend.name)]
    deployment, _ = replicas[0].submit("p1", "app", "/builds/a", None)
    assert replicas[1].get(deployment.id) == deployment


def test_migration_history_that_does_not_fit_is_refused() -> None:
    shipped = load_migrations("sqlite")
    assert pending(shipped, {}) == shipped
    assert pending(shipped, {m.version: m.checksum for m in shipped}) == []
    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending(shipped, {1: "0" * 64})
    with pytest.raises(MigrationError, match="does not ship"):
        pending(shipped, {9999: "x"})
    assert split_sqlite_script("CREATE TABLE a (x);\n-- trailing note\n") == ["CREATE TABLE a (x);"]
    with pytest.raises(MigrationError, match="unterminated"):
        split_sqlite_script("CREATE TABLE a (x)\n")


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_schema_columns_and_no_secret_column(backend: Backend, store: Store) -> None:
    for table, expected in TABLE_COLUMNS.items():
        assert backend.columns(table) == expected, table
    every = set().union(*TABLE_COLUMNS.values()) - {"sealed"}  # sealed: opaque, in its own table
    for name in every:
        assert not any(w in name for w in ("secret", "token", "password", "passwd", "sealed"))


# -- submit ---------------------------------------------------------------------------------
def test_submit_and_idempotency(store: Store) -> None:
    first, created = store.submit("p1", "shop", "/builds/shop", "key-1", owner="u1")
    assert created
    assert first.id.startswith("dep_") and len(first.id) == 28
    int(first.id[4:], 16)
    assert (first.status, first.attempt, first.action) == (Status.QUEUED, 0, "deploy")
    assert first.created_at.endswith("Z") and first.updated_at.endswith("Z")
    assert first.idempotency_key == "key-1"

    again, created = store.submit("p1", "shop", "/builds/shop", "key-1", owner="u1")
    assert (again, created) == (first, False)

    for changed in (
        ("p2", "shop", "/builds/shop", "deploy", "u1"),
        ("p1", "shop2", "/builds/shop", "deploy", "u1"),
        ("p1", "shop", "/builds/other", "deploy", "u1"),
        ("p1", "shop", "/builds/shop", "teardown", "u1"),
        ("p1", "shop", "/builds/shop", "deploy", "u2"),  # another user's reuse of the key
    ):
        project_id, name, build_dir, action, owner = changed
        with pytest.raises(Conflict, match="key-1"):
            store.submit(project_id, name, build_dir, "key-1", action=action, owner=owner)

    a, created_a = store.submit("p1", "shop", "/builds/shop", None)
    b, created_b = store.submit("p1", "shop", "/builds/shop", None)
    assert created_a and created_b and a.id != b.id
    assert [d.id for d in store.list_deployments()] == [b.id, a.id, first.id]
    assert [d.id for d in store.list_deployments(limit=1)] == [b.id]
    store.submit("p9", "other", "/builds/o", None)
    assert [d.id for d in store.list_deployments("p1")] == [b.id, a.id, first.id]
    assert store.get(first.id) == first
    assert store.get("dep_" + "0" * 24) is None


def test_submit_refuses_unstorable_text(store: Store) -> None:
    with pytest.raises(ValueError, match="project_name contains a NUL"):
        store.submit("p1", "a\x00b", "/builds/a", None)
    with pytest.raises(ValueError, match="project_id must be a non-empty string"):
        store.submit("", "a", "/builds/a", None)
    assert store.list_deployments() == []


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_concurrent_submits_with_one_key_make_one_deployment(
    backend: Backend, store: Store
) -> None:
    replicas = [store, backend.open(), backend.open(), backend.open()]
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        for n in range(10):
            deployment, created = replicas[i].submit("p1", "a", "/b", f"key-{n}")
            with lock:
                results.append((deployment.id, created))

    _parallel(4, submit)
    assert sum(created for _, created in results) == 10
    assert len({dep_id for dep_id, _ in results}) == 10
    assert len(store.list_deployments()) == 10


# -- queue ----------------------------------------------------------------------------------
def test_claim_order_project_exclusion_and_limit(store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    b, _ = store.submit("p2", "two", "/b/2", None)
    c, _ = store.submit("p1", "one", "/b/1", None)
    d, _ = store.submit("p3", "three", "/b/3", None)

    got = store.claim("w1", max_running=10)
    assert got is not None and got.id == a.id
    assert (got.status, got.attempt) == (Status.RUNNING, 1)
    assert got.started_at is not None and got.started_at.endswith("Z")
    got = store.claim("w1", max_running=10)
    assert got is not None and got.id == b.id  # c waits: p1 runs
    assert store.claim("w1", max_running=2) is None  # two run: the limit
    got = store.claim("w1", max_running=3)
    assert got is not None and got.id == d.id  # c is still skipped, d is next
    assert store.claim("w1", max_running=10) is None  # only c is left, and p1 runs
    assert {x.id for x in store.running()} == {a.id, b.id, d.id}

    store.update(a.id, Patch(status=Status.LIVE, finished_at="2026-01-01T00:00:05Z", exit_code=0))
    got = store.claim("w2", max_running=10)
    assert got is not None and got.id == c.id
    assert store.claim("w2", max_running=10) is None
    with pytest.raises(ValueError, match="max_running"):
        store.claim("w2", max_running=0)


def test_never_two_running_of_one_project_even_outside_claim(store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    b, _ = store.submit("p1", "one", "/b/1", None)
    assert store.claim("w", 5) is not None
    with pytest.raises(InvalidTransition, match="already has a running deployment"):
        store.update(b.id, Patch(status="running"))
    still = store.get(b.id)
    assert still is not None and still.status == Status.QUEUED
    assert [x.id for x in store.running()] == [a.id]


def test_claim_clears_the_last_attempt_and_requeue(backend: Backend, store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    b, _ = store.submit("p2", "two", "/b/2", None)
    claimed = store.claim("worker-a", 5)
    assert claimed is not None and claimed.id == a.id
    with pytest.raises(InvalidTransition, match="is running"):
        store.requeue(a.id)
    failed = store.update(
        a.id,
        Patch(
            status=Status.FAILED,
            step="vercel",
            error="lost",
            exit_code=137,
            finished_at="2026-01-01T00:00:09.5+00:00",
            health={"http": 502},
        ),
    )
    assert failed.finished_at == "2026-01-01T00:00:09.500Z"
    assert failed.health == {"http": 502}

    again = store.requeue(a.id)
    assert (again.status, again.attempt, again.error, again.exit_code) == (
        Status.QUEUED, 1, None, None,
    )  # fmt: skip
    assert again.finished_at is None and not again.cancel_requested
    assert again.claimed_by is None
    # The requeued deployment waits behind what was queued before it.
    first = store.claim("worker-b", 5)
    assert first is not None and first.id == b.id
    second = store.claim("worker-b", 5)
    assert second is not None and second.id == a.id
    assert (second.attempt, second.error, second.exit_code, second.finished_at) == (
        2, None, None, None,
    )  # fmt: skip
    assert second.step == "vercel"  # the last step stays until the new attempt reports one
    assert second.claimed_by == "worker-b"
    assert backend.query("SELECT claimed_by FROM deployments WHERE id = ?", (a.id,)) == [
        ("worker-b",)
    ]
    with pytest.raises(UnknownDeployment):
        store.requeue("dep_" + "0" * 24)


def test_claim_keeps_a_cancel_request(store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    store.update(a.id, Patch(cancel_requested=True))
    claimed = store.claim("w", 5)
    assert claimed is not None and claimed.cancel_requested  # the worker ends it, unlaunched


def test_update_checks_its_fields(store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    with pytest.raises(TypeError, match="claimed_by"):
        store.update(a.id, Patch(claimed_by="me"))
    with pytest.raises(ValueError, match="status must be one of"):
        store.update(a.id, Patch(status="done"))
    with pytest.raises(ValueError, match="repo_url carries a password"):
        store.update(a.id, Patch(repo_url="https://x-access-token:ghp_abcdef@github.example/o/r"))
    with pytest.raises(ValueError, match="started_at must carry a time zone"):
        store.update(a.id, Patch(started_at="2026-01-01T00:00:00"))
    with pytest.raises(UnknownDeployment):
        store.update("dep_" + "0" * 24, Patch(step="x"))
    updated = store.update(
        a.id,
        Patch(
            step="supabase",
            app_url="https://shop.example",
            repo_url="https://github.example/o/shop",
            database_url="https://abc.supabase.example",
            error="boom \x00 \ud800",
        ),
    )
    assert updated.app_url == "https://shop.example"
    assert updated.error is not None and updated.error.startswith("boom ")
    assert updated.updated_at >= a.updated_at
    assert store.get(a.id) == updated


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_burst_of_claimers_never_double_claims(backend: Backend, store: Store) -> None:
    """50 deployments over 10 projects, 4 claimers (own connections: replicas), max 4."""
    submitted = {store.submit(f"p{i % 10}", f"app{i % 10}", "/b", None)[0].id for i in range(50)}
    claimers = [backend.open() for _ in range(4)]
    lock = threading.Lock()
    claimed: list[str] = []
    running_projects: set[str] = set()
    finished = [0]
    max_running = 4

    def work(index: int) -> None:
        mine = claimers[index]
        for _ in range(20_000):
            with lock:
                if finished[0] == len(submitted):
                    return
            got = mine.claim(f"claimer-{index}", max_running)
            if got is None:
                time.sleep(0.001)
                continue
            with lock:
                assert got.project_id not in running_projects, f"two of {got.project_id}"
                running_projects.add(got.project_id)
                assert len(running_projects) <= max_running
                claimed.append(got.id)
            # A model of "running" that is never wider than the store's: removed first.
            with lock:
                running_projects.discard(got.project_id)
            mine.update(got.id, Patch(status=Status.LIVE, exit_code=0))
            with lock:
                finished[0] += 1
        raise AssertionError("the burst did not drain")

    _parallel(4, work)
    assert sorted(claimed) == sorted(submitted)  # each exactly once
    assert all(d.status == Status.LIVE and d.attempt == 1 for d in store.list_deployments())


# -- events ---------------------------------------------------------------------------------
def test_append_events_contiguous_ids_and_pages(store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    b, _ = store.submit("p2", "two", "/b/2", None)
    assert store.append_events(a.id, []) == []
    first = store.append_events(a.id, [_event(1), _event(2), _event(3)])
    assert [e.id for e in first] == [1, 2, 3]
    other = store.append_events(b.id, [_event(1)])
    assert [e.id for e in other] == [1]
    odd = NewEvent(attempt=2, type="heartbeat", ts="2026-01-01T00:00:01Z", payload={})
    second = store.append_events(a.id, [_event(4), odd])
    assert [e.id for e in second] == [4, 5]
    assert second[1].runner_seq is None

    everything = store.events(a.id)
    assert everything == first + second
    assert everything[0].payload == {"level": "info", "message": "line 1"}
    assert [e.id for e in store.events(a.id, after_id=2, limit=2)] == [3, 4]
    assert store.events(a.id, after_id=5) == []
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        store.events(a.id, limit=0)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        store.list_deployments(limit=-1)
    assert [e.public()["seq"] for e in everything] == [1, 2, 3, 4, None]
    with pytest.raises(UnknownDeployment):
        store.append_events("dep_" + "0" * 24, [_event(1)])


def test_events_with_unstorable_text_are_kept(backend: Backend, store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    weird = NewEvent(1, "log", "2026-01-01T00:00:00Z", {"level": "info", "message": "a\x00b\ud800"})
    awkward = NewEvent(
        1,
        "log",
        "2026-01-01T00:00:00Z",
        {"message": 'tab\t nl\n cr\r bs\\ quote" \\N é 🚀 \\u0000', "n": [1, 2.5, None, True]},
    )
    (kept, plain) = store.append_events(a.id, [weird, awkward])
    assert store.events(a.id) == [kept, plain]
    assert plain.payload == awkward.payload
    expected = "a\x00b\ufffd" if backend.name == "sqlite" else "a\ufffdb\ufffd"
    assert kept.payload["message"] == expected


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_concurrent_appends_to_one_deployment(backend: Backend, store: Store) -> None:
    a, _ = store.submit("p1", "one", "/b/1", None)
    writers = [store, backend.open(), backend.open(), backend.open()]

    def write(i: int) -> None:
        for batch in range(10):
            store_ = writers[i]
            store_.append_events(a.id, [_event(1000 * i + 10 * batch + k) for k in range(10)])

    _parallel(4, write)
    events = store.events(a.id)
    assert [e.id for e in events] == list(range(1, 401))
    # each batch landed contiguously
    for start in range(0, 400, 10):
        seqs = [e.runner_seq for e in events[start : start + 10]]
        assert seqs == list(range(seqs[0] or 0, (seqs[0] or 0) + 10))


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_append_throughput(
    backend: Backend, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """Measured, not asserted: 10k events in batches of 500 (printed for the report)."""
    deployments = [store.submit(f"p{i}", "bench", "/b", None)[0] for i in range(2)]
    batch = [_event(n) for n in range(500)]
    for deployment in deployments:  # warm-up: connections, plans
        store.append_events(deployment.id, batch[:10])
    per_round: list[float] = []
    for deployment in deployments:
        started = time.perf_counter()
        for _ in range(20):
            store.append_events(deployment.id, batch)
        per_round.append(10_000 / (time.perf_counter() - started))
    assert len(store.events(deployments[0].id, limit=20_000)) == 10_010
    with capsys.disabled():
        print(
            f"\n[store bench] {backend.name}: append 10k events in batches of 500: "
            f"{max(per_round):,.0f} events/s (best of {len(per_round)})"
        )


# -- sealed secrets and signatures ----------------------------------------------------------
def test_sealed_secrets(store: Store) -> None:
    assert store.get_sealed("p1") == {}
    store.put_sealed("p1", "SUPABASE_DB_PASSWORD", "sealed:aaa")
    store.put_sealed("p1", "VERCEL_TOKEN", "sealed:bbb")
    store.put_sealed("p2", "VERCEL_TOKEN", "sealed:ccc")
    store.put_sealed("p1", "VERCEL_TOKEN", "sealed:ddd")
    assert store.get_sealed("p1") == {
        "SUPABASE_DB_PASSWORD": "sealed:aaa",
        "VERCEL_TOKEN": "sealed:ddd",
    }
    assert store.get_sealed("p2") == {"VERCEL_TOKEN": "sealed:ccc"}


def test_remember_signature_refuses_replays(store: Store) -> None:
    now = time.time()
    assert store.remember_signature("sha256=aa", now + 300)
    assert not store.remember_signature("sha256=aa", now + 300)
    assert store.remember_signature("sha256=bb", now + 300)
    # An expired entry is pruned, so it no longer counts (the caller's window refuses it).
    assert store.remember_signature("sha256=old", now - 1)
    assert store.remember_signature("sha256=old", now - 1)
    assert not store.remember_signature("sha256=bb", now + 300)


# -- open_store -----------------------------------------------------------------------------
def test_open_store_urls(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'a.db'}", str(tmp_path / "sub" / "b.db")):
        opened = open_store(url)
        try:
            assert isinstance(opened, SQLiteStore)
            opened.migrate()
        finally:
            opened.close()
    assert (tmp_path / "a.db").exists() and (tmp_path / "sub" / "b.db").exists()
    for bad in (
        "mysql://root:hunter22@db/forge",
        "sqlite://",
        "sqlite:///:memory:",
        ":memory:",
        "host=db dbname=forge password=hunter22",
        "",
    ):
        with pytest.raises(ValueError, match=r"unsupported|empty") as caught:
            open_store(bad)
        assert "hunter22" not in str(caught.value)
    with pytest.raises(ValueError, match="mysql://root:\\*\\*\\*@db/forge"):
        open_store("mysql://root:hunter22@db/forge")
    with pytest.raises(ValueError, match="is a directory"):
        open_store(str(tmp_path))


@pytest.mark.postgres
def test_open_store_postgres(postgres_url: str) -> None:
    opened = open_store(postgres_url)
    try:
        assert isinstance(opened, PostgresStore)
    finally:
        opened.close()
    wrong = urlsplit(postgres_url)
    netloc = f"postgres:not-the-password@{wrong.hostname}:{wrong.port}"
    bad = urlunsplit(wrong._replace(netloc=netloc))
    with pytest.raises(StoreError, match=r"no connection.*password authentication") as caught:
        PostgresStore(bad, connect_timeout_s=2)
    assert "not-the-password" not in str(caught.value)


# -- PostgreSQL: what a Supabase-hosted dashboard needs ------------------------------------------
@pytest.fixture
def supabase_roles(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Supabase's API roles (cluster-wide, kept) and two login roles, one a member of each."""
    suffix = uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    user, visitor = f"dash_user_{suffix}", f"dash_anon_{suffix}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for role in ("anon", "authenticated"):
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        for login, member_of in ((user, "authenticated"), (visitor, "anon")):
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(login), sql.Literal(password), sql.Identifier(member_of)
                )
            )
    yield user, visitor
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for login in (user, visitor):
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def _as_role(url: str, role: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}"))


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_row_level_security_shows_a_user_only_their_deployments(
    backend: Backend, supabase_roles: tuple[str, str], postgres_url: str
) -> None:
    user, visitor = supabase_roles
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        password = uuid.uuid4().hex
        for role in (user, visitor):
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
    store = backend.open()
    store.migrate()  # after the roles exist, as on Supabase
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    mine, _ = store.submit("p1", "alice-app", "/b/1", None, owner=alice)
    theirs, _ = store.submit("p2", "bob-app", "/b/2", None, owner=bob)
    store.append_events(mine.id, [_event(1), _event(2)])
    store.append_events(theirs.id, [_event(1)])
    store.put_sealed("p1", "VERCEL_TOKEN", "sealed:xyz")
    dbname = urlsplit(backend.url).path.lstrip("/")
    user_url = _with_dbname(_as_role(postgres_url, user, password), dbname)
    visitor_url = _with_dbname(_as_role(postgres_url, visitor, password), dbname)

    with psycopg.connect(user_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False, False)
        assert conn.execute("SELECT count(*) FROM deployments").fetchone() == (0,)  # no claim
        conn.execute("SELECT set_config('request.jwt.claim.sub', %s, false)", (alice,))
        assert conn.execute("SELECT id, owner FROM deployments").fetchall() == [(mine.id, alice)]
        assert conn.execute("SELECT deployment_id, id FROM events ORDER BY id").fetchall() == [
            (mine.id, 1),
            (mine.id, 2),
        ]
        # PostgREST's newer form: all claims as one JSON setting
        conn.execute("SELECT set_config('request.jwt.claim.sub', '', false)")
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (f'{{"sub": "{bob}"}}',))
        assert conn.execute("SELECT id FROM deployments").fetchall() == [(theirs.id,)]
        for forbidden in (
            "SELECT * FROM sealed_secrets",
            "SELECT * FROM hook_signatures",
            "UPDATE deployments SET status = 'live'",
            "DELETE FROM events",
            "TRUNCATE deployments",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
    with psycopg.connect(visitor_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('request.jwt.claim.sub', %s, false)", (alice,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM deployments")
    # The dispatcher, the tables' owner, is not restricted.
    assert len(store.list_deployments()) == 2


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_realtime_publication_has_the_deployments_table(backend: Backend, store: Store) -> None:
    rows = backend.query(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
    )
    assert rows == [("deployments",)]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_migration_adopts_what_supabase_already_has(backend: Backend) -> None:
    """Supabase ships auth.uid() and an empty supabase_realtime: both are used, not replaced."""
    backend.query("CREATE SCHEMA auth")
    backend.query(
        "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE"
        " AS $$ SELECT '00000000-0000-0000-0000-000000000001'::uuid $$"
    )
    backend.query("CREATE PUBLICATION supabase_realtime")
    store = backend.open()
    store.migrate()
    assert backend.query("SELECT auth.uid()::text") == [("00000000-0000-0000-0000-000000000001",)]
    assert backend.query(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
    ) == [("deployments",)]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_password_sealed_before_keeps_working_under_its_checkpoint_key(
    backend: Backend,
) -> None:
    """Migration 2: a sealed password kept as 'db_password' (before the checkpoint format was
    the one format) is found under the runner's checkpoint key afterwards."""
    store = backend.open()
    store.migrate()
    backend.query("DELETE FROM schema_migrations WHERE version = 2")
    store.put_sealed("p1", "db_password", "sealed-before")
    store.put_sealed("p2", SEALED_DB_PASSWORD, "sealed-after")
    backend.open().migrate()
    assert store.get_sealed("p1") == {SEALED_DB_PASSWORD: "sealed-before"}
    assert store.get_sealed("p2") == {SEALED_DB_PASSWORD: "sealed-after"}
