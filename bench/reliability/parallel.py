"""`--jobs N`: the kinds run in N worlds at once, each kind whole in a child
`python -m bench.reliability --only KIND` (its own PostgreSQL cluster and sandbox, so one kind's
faults, rate-limit resets and outages never meet another's). The kinds that took longest in
the last figures start first; the children's rows are merged into one table."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.reliability.table import Row, Verdict
from bench.reliability.world import REPO


def longest_first(kinds: list[str], last: Path) -> list[str]:
    """`kinds` ordered by the seconds their rows took in `last` (a figures file): the row's
    wall time, else its cases' seconds summed; kinds with neither (a one-pass kind's verdicts
    carry no seconds) first, since they may be long; ties in the given order."""
    took: dict[str, float] = {}
    if last.exists():
        for row in json.loads(last.read_text()).get("rows", []):
            cases = sum(float(v.get("seconds", 0)) for v in row.get("verdicts", []))
            took[row["kind"]] = float(row.get("seconds") or cases)

    def seconds(prefix: str) -> float:
        found = sum(s for kind, s in took.items() if kind.startswith(prefix))
        return found or float("inf")

    return sorted(kinds, key=lambda k: -seconds(k))


def rows_of(path: Path) -> list[Row]:
    """The rows of a figures file, verdicts and all."""
    rows = []
    for row in json.loads(path.read_text())["rows"]:
        verdicts = [
            Verdict(**{k: v for k, v in d.items() if k != "passed"}) for d in row["verdicts"]
        ]
        rows.append(Row(row["kind"], row["cases"], verdicts, float(row.get("seconds", 0))))
    return rows


def run(
    kinds: list[str],
    jobs: int,
    child_args: list[str],
    out: Path,
    save: Callable[[list[Row]], None],
    progress: Callable[[str], None],
) -> list[Row]:
    """Each of `kinds` (prefixes for `--only`) in a child of its own, `jobs` at a time; every
    line a child prints is passed on under its kind's name; `save` gets the merged rows each
    time a child ends."""
    lock = threading.Lock()
    parts = {k: out.with_name(f"{out.stem}.part-{n}{out.suffix}") for n, k in enumerate(kinds)}
    done: dict[str, list[Row]] = {}
    running: set[subprocess.Popen[str]] = set()

    def child(kind: str) -> None:
        argv = [*child_args, "--only", kind, "--out", str(parts[kind])]
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.reliability", *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running.add(process)
        assert process.stdout is not None
        for line in process.stdout:
            progress(f"[{kind}] {line.rstrip()}")
        code = process.wait()
        running.discard(process)
        rows = rows_of(parts[kind]) if parts[kind].exists() else []
        for row in rows:
            row.seconds = round(time.monotonic() - started, 1)
        if code not in (0, 1) or not rows:  # 1: a case failed, and the rows say which
            failed = Verdict(f"{kind}: the run itself", stuck=[f"exited {code} with no figures"])
            rows = rows or [Row(kind, 0)]
            rows[0].verdicts.append(failed)
        with lock:
            done[kind] = rows
            save([row for k in kinds if k in done for row in done[k]])
        parts[kind].unlink(missing_ok=True)

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for future in [pool.submit(child, kind) for kind in longest_first(kinds, out)]:
            future.result()
    finally:  # stopped (SIGTERM, Ctrl-C): each child stops its own world as it unwinds
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(running):
            process.terminate()
        for process in list(running):
            process.wait()
    return [row for k in kinds for row in done.get(k, [])]
