"""The store going away under a running dispatcher (issue 13, "Dispatcher chaos"): what counts
as an outage (each store dialect's `outage`, which the store raises as the core's
`StoreUnavailable`), a store call that waits it out and says so once (`StoreWatch`), and an
attempt's events held through a real full disk, then stored once each.

Before this, a failed flush dropped its batch of events and killed the thread that ran it (the
claim loop among them: no deployment was claimed again). The PostgreSQL restart mid-deploy is
`test_e2e_store_restart.py`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from dispatcher.core import signing
from dispatcher.core.deployments import Deployments
from dispatcher.core.errors import StoreStopped, StoreUnavailable
from dispatcher.core.ingest import Ingestor
from dispatcher.core.outages import StoreWatch
from dispatcher.store.postgres import outage as postgres_outage
from dispatcher.store.sqlite import SQLiteStore
from dispatcher.store.sqlite import outage as sqlite_outage
from dispatcher.web.app import WebSettings, create_app
from runner.events import VERSION, Event, EventType
from runner.masking import Masker
from sandbox.postgres import free_port
from tests.support.core import idle_core


def sqlite_full_error(tmp_path: Path) -> sqlite3.OperationalError:
    """SQLite's own "database or disk is full", from a database capped at a few pages."""
    conn = sqlite3.connect(tmp_path / "capped.db")
    try:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.execute("PRAGMA max_page_count = 3")
        with pytest.raises(sqlite3.OperationalError) as caught:
            for _ in range(100):
                conn.execute("INSERT INTO t VALUES (?)", ("x" * 4000,))
        return caught.value
    finally:
        conn.close()


def test_unavailable_tells_an_outage_from_a_real_error(tmp_path: Path) -> None:
    with pytest.raises(psycopg.OperationalError) as refused:
        port = free_port("127.0.0.1")  # nothing listens there
        psycopg.connect(f"postgresql://u@127.0.0.1:{port}/db", connect_timeout=2)
    assert (postgres_outage(refused.value) or "").startswith("PostgreSQL: connection")
    full = sqlite_outage(sqlite_full_error(tmp_path))
    assert full is not None and "disk is full" in full, full
    assert sqlite_outage(OSError(errno.ENOSPC, "No space left on device")) is not None
    assert postgres_outage(OSError(errno.ENOSPC, "No space left on device")) is not None

    conn = sqlite3.connect(tmp_path / "unique.db")
    conn.execute("CREATE TABLE t (x TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES ('a')")
    with pytest.raises(sqlite3.IntegrityError) as duplicate:
        conn.execute("INSERT INTO t VALUES ('a')")
    conn.close()
    assert sqlite_outage(duplicate.value) is None  # a real error: raised, not waited out
    assert sqlite_outage(ValueError("bad")) is None
    assert sqlite_outage(OSError(errno.EACCES, "Permission denied")) is None
    assert postgres_outage(ValueError("bad")) is None


def test_a_store_call_waits_out_an_outage_and_logs_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    error = StoreUnavailable(sqlite_outage(sqlite_full_error(tmp_path)))
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    watch = StoreWatch(sleep=sleep, clock=lambda: clock[0], first_wait_s=0.5, max_wait_s=2.0)
    failures = iter([error] * 5)

    def operation() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "stored"

    with caplog.at_level(logging.WARNING, "forge.dispatcher.store"):
        result = watch.call(operation, "storing")
    assert result == "stored"
    assert sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]  # capped backoff
    assert watch.last == (7.5, str(error))
    assert str(error).startswith("SQLite: its disk is full")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("store unavailable: SQLite: its disk is full"), messages
    assert messages[1] == "store available again after 7.5 s: carrying on"
    assert not watch.down and watch.outages == 1

    # A real error is raised at once, nothing waited.
    with pytest.raises(ValueError, match="bad"):
        watch.call(lambda: (_ for _ in ()).throw(ValueError("bad")), "storing")
    assert len(sleeps) == 5


def test_a_stopping_dispatcher_stops_waiting(tmp_path: Path) -> None:
    stopped = threading.Event()
    stopped.set()
    error = StoreUnavailable(sqlite_outage(sqlite_full_error(tmp_path)))
    watch = StoreWatch(stopped, sleep=lambda s: None)

    def operation() -> None:
        raise error

    with pytest.raises(StoreStopped, match="disk is full"):
        watch.call(operation, "claiming")


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (CI does)"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(path: Path) -> None:
    with path.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)


def runner_line(seq: int) -> str:
    message = f"line {seq} " + "x" * 4000  # big enough to outgrow what the WAL file holds
    payload = {"level": "info", "message": message}
    return Event(VERSION, EventType.LOG, "d", seq, "2026-01-01T00:00:00.000Z", payload).to_json()


def test_events_held_through_a_full_disk_are_stored_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_tmpfs(tmp_path / "state", "4m") as state:
        store = SQLiteStore(state / "dispatcher.db")
        try:
            store.migrate()
            store.submit("p1", "shop", str(tmp_path), None)
            dep = store.claim("w", 4)
            assert dep is not None
            watch = StoreWatch(max_wait_s=0.05)
            waiting = Deployments(store, builds_root=tmp_path).waiting(watch)
            record = partial(waiting.record, dep.id)
            ingest = Ingestor(record, dep.attempt, Masker(), batch=1000, store_outages=watch)
            for seq in range(1, 6):
                ingest.line(runner_line(seq))
            ingest.flush()

            filler = state / "filler"
            fill(filler)
            with caplog.at_level(logging.WARNING, "forge.dispatcher.store"):
                for seq in range(6, 400):
                    ingest.line(runner_line(seq))
                writer = threading.Thread(target=ingest.flush)
                writer.start()
                deadline = time.monotonic() + 60
                while not watch.down and writer.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert watch.down, "the flush never met the full disk"
                filler.unlink()
                writer.join(timeout=120)
                assert not writer.is_alive()

            stored = store.events(dep.id)
            seqs = [e.runner_seq for e in stored if e.runner_seq is not None]
            assert seqs == list(range(1, 400))  # each once, in order
            notes = [str(e.payload["message"]) for e in stored if e.runner_seq is None]
            assert len(notes) == 1 and notes[0].startswith("the store was unavailable for "), notes
            assert "disk is full" in notes[0]
            said = [r.getMessage() for r in caplog.records]
            assert len(said) == 2, said
            assert said[0].startswith("store unavailable: SQLite: its disk is full"), said
            assert said[1].startswith("store available again after "), said
        finally:
            store.close()


def test_the_api_answers_503_while_the_store_is_full_then_serves(tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    (builds / "app-1").mkdir(parents=True)
    secret = b"a-hook-secret-of-32-characters!!"
    with small_tmpfs(tmp_path / "state", "4m") as state:
        store = SQLiteStore(state / "dispatcher.db")
        try:
            store.migrate()
            app = create_app(idle_core(store, builds), WebSettings(hook_secret=secret))
            with TestClient(app, raise_server_exceptions=False) as client:

                def submit(name: str) -> httpx.Response:
                    body = json.dumps(
                        {"project_id": name, "project_name": name, "build_dir": "app-1"}
                    ).encode()
                    headers = {**signing.sign(secret, body, time.time())}
                    headers["Content-Type"] = "application/json"
                    return client.post("/v1/deployments", content=body, headers=headers)

                with contextlib.closing(sqlite3.connect(state / "dispatcher.db")) as db:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no room kept in the WAL
                filler = state / "filler"
                fill(filler)
                refused = submit("full")
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "store_unavailable"
                assert refused.headers["Retry-After"] == "2"
                filler.unlink()
                taken = submit("after")
                assert taken.status_code == 202, taken.text
                assert [d.project_id for d in store.list_deployments()] == ["after"]
        finally:
            store.close()
