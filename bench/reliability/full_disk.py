"""Dispatcher chaos: its state dir fills up mid-deploy. `forge-dispatcher serve` (process
launcher) with its state dir — the SQLite store, its log, the runners' attempt folders — on a
tmpfs of its own, filled with a file right after a step boundary of a recorded deploy, kept
full a moment, then freed. The deployment must end `live` (or, when the runner itself could
not write, `failed` naming the full disk and `live` once retried), its stored events each
runner's seqs 1..n exactly once, one of each resource; the dispatcher's log must say the disk
was full and that it recovered, and the dispatcher must serve a new deploy afterwards."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability import chaos
from bench.reliability.table import Verdict
from bench.reliability.world import World, unique_name
from tests.dispatcher.conftest import Api
from tests.dispatcher.test_e2e_restart import ServeProcess

KIND = "chaos: state dir full"
SIZE = "64m"  # the state dir's tmpfs
FULL_S = 3.0  # how long it stays full
NO_SPACE = ("no space left", "disk is full")
PROBES = 2000  # signed writes sent while full, at most
UNKNOWN = "dep_" + "0" * 24  # a deployment that does not exist: each probe a 404, or a 503


@dataclass(frozen=True)
class FullDiskCase:
    signature: str

    @property
    def id(self) -> str:
        return f"fill the state dir after {self.signature} (full {FULL_S:g} s)"


def cases(w: World) -> list[FullDiskCase]:
    return [FullDiskCase(c.signature) for c in chaos.record(w)]


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                   check=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(path: Path) -> int:
    """Write `path` until the file system refuses one more byte; the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                written += out.write(chunk) or 0
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            while out.write(b"\0" * 512):
                written += 512
    return written


def run_case(w: World, case: FullDiskCase) -> Verdict:
    root = w.root / unique_name("full-disk")
    answers: list[str] = []  # the API's answers to writes sent while the disk was full
    with tmpfs(root / "state", SIZE) as state:
        filler = state / "filler"

        def fill_then_free(process: ServeProcess, api: Api) -> None:
            # SQLite reuses the room its WAL file already has: emptied (as any checkpoint may
            # leave it), its next write must find new room.
            with contextlib.closing(sqlite3.connect(state / "dispatcher.db")) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            fill(filler)
            # Writes until one meets the full disk (each signed request's signature is stored;
            # a room the WAL file kept is used up first): the API must answer 503.
            for _ in range(PROBES):
                probe = api.action(UNKNOWN, "cancel")
                if probe.status_code != 404:
                    break
            answers.append(f"{probe.status_code} {probe.text}")
            time.sleep(FULL_S)
            filler.unlink()

        def check(v: Verdict, process: ServeProcess, api: Api, e: list[dict[str, Any]]) -> None:
            said(v, process, api, e, answers)

        return chaos.disrupted(
            w, case.id, case.signature, fill_then_free, check, retried, state=state
        )


def retried(verdict: Verdict, api: Api, done: dict[str, Any]) -> dict[str, Any]:
    """A deployment whose runner could not write ends `failed` naming the full disk; retried
    once the space is back, it must end `live`."""
    error = str(done.get("error") or "").lower()
    if done["status"] != "failed" or not any(words in error for words in NO_SPACE):
        return done
    response = api.action(done["id"], "retry")
    if response.status_code not in (200, 202):
        verdict.lost.append(f"retry: {response.status_code} {response.text[:300]}")
        return done
    return api.wait_terminal(done["id"], timeout_s=300)


def said(
    verdict: Verdict,
    process: ServeProcess,
    api: Api,
    events: list[dict[str, Any]],
    answers: list[str],
) -> None:
    """The dispatcher told of the full disk — in its log (on that disk: what it wrote while full
    may be lost), the deployment's events, or its answer to a write sent meanwhile (503
    store_unavailable) — and of the recovery; it serves a new deploy."""
    notes = [str(e["payload"].get("message", "")) for e in events if e["seq"] is None]
    log = process.log.read_text(errors="replace")
    told = "\n".join([log, *notes, *answers]).lower()
    if not any(words in told for words in NO_SPACE) and "store_unavailable" not in told:
        verdict.other.append(f"no word of the full disk (log, events or answers: {answers})")
    waited = "store unavailable:" in told  # a store call waited the disk out
    if not any(a.startswith("503") and "store_unavailable" in a for a in answers):
        verdict.other.append(f"a write sent while the disk was full was not refused: {answers}")
    if waited and "store available again" not in told and "store was unavailable" not in told:
        verdict.other.append("no word of the recovery (log or events)")
    done = api.wait_terminal(chaos.submit(api, unique_name("after")), timeout_s=300)
    if done["status"] != "live":
        verdict.lost.append(f"a deploy after the disk was freed ended {done['status']}")
