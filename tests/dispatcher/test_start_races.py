"""Several processes starting on one brand-new state at the same instant (two dispatchers, or a
dispatcher and `forge-dispatcher status`): opening the SQLite store never fails on the WAL
switch's lock, a lock really held past the timeout is a clear error naming the file, and the
embedded seal key pair is made once, every process reading the same one."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from dispatcher.core.errors import StoreError
from dispatcher.store.sqlite import SQLiteStore
from tests.dispatcher.start_race_workers import load_settings, open_new_files

PROCESSES = 6
ROUNDS = 40


def test_processes_opening_one_new_file_at_once_never_fail(tmp_path: Path) -> None:
    rounds = []
    for i in range(ROUNDS):
        folder = tmp_path / f"round-{i}"
        folder.mkdir()
        rounds.append(str(folder / "dispatcher.db"))
    context = multiprocessing.get_context("spawn")  # separate processes: only the file shared
    barrier = context.Barrier(PROCESSES)
    failures = context.Queue()
    workers = [
        context.Process(target=open_new_files, args=(rounds, barrier, failures, i))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    reported = []
    while not failures.empty():
        reported.append(failures.get())
    assert reported == [], f"{len(reported)} failed opens; the first:\n{reported[0]}"
    for path in rounds:  # every round: one migration, every worker's deployment kept, WAL
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1
            assert conn.execute("SELECT count(*) FROM deployments").fetchone()[0] == PROCESSES
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_lock_held_past_the_timeout_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a new file in rollback mode, locked for good
    sleeps: list[float] = []
    store = SQLiteStore(path, busy_timeout_s=0.2, sleep=sleeps.append)
    try:
        with pytest.raises(StoreError, match="locked by another process") as caught:
            store.migrate()
        assert str(path) in str(caught.value)
        assert "WAL" in str(caught.value)
        assert all(s <= 0.1 for s in sleeps)  # the backoff is bounded
    finally:
        store.close()
        holder.execute("ROLLBACK")
        holder.close()
    reopened = SQLiteStore(path)  # released: the same file opens and migrates
    try:
        reopened.migrate()
    finally:
        reopened.close()


def test_processes_starting_on_one_new_state_dir_share_one_seal_key_pair(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for round_ in range(10):
        state = tmp_path / f"state-{round_}"
        barrier = context.Barrier(PROCESSES)
        keys = context.Queue()
        workers = [
            context.Process(target=load_settings, args=(str(state), str(tmp_path), barrier, keys))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        seen = [keys.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        failed = [k for k in seen if k.startswith("failed")]
        assert failed == [], failed[0]
        assert len(set(seen)) == 1, "processes read different key pairs"
        key_file = state / "seal.key"
        assert key_file.read_text().split() == seen[0].split()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in state.iterdir()) == ["seal.key"]  # no temporary left
