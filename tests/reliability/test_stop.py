"""Stopping `make reliability` leaves nothing running: a child (one kind, one world) that gets
SIGTERM, then its parent's SIGTERM while it unwinds — what a Ctrl-C or a `pkill` of the run
does — still stops its sandbox and its PostgreSQL cluster and removes its folder. Before, the
second signal cut the `finally` short and the cluster kept running. The run makes its worlds in
a folder of its own (`FORGE_RELIABILITY_ROOT`), so only its processes are looked at: another run
on the same machine is neither counted nor stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clis import REPO

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


@pytest.fixture
def worlds_root() -> Iterator[Path]:
    """A folder of this test's own for the run's worlds; `postgres` must enter it."""
    root = Path(tempfile.mkdtemp(prefix="forge-stop-test-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def world_processes(root: Path) -> dict[int, str]:
    """The processes running in a world's folder under `root`: pid -> command line."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and f"{root}/forge-reliability-" in line:
            found[int(proc.name)] = line
    return found


def children(pid: int) -> list[int]:
    """Every thread's children (the run starts its children from a pool's threads)."""
    return [int(p) for t in Path(f"/proc/{pid}/task").iterdir() for p in
            (t / "children").read_text().split()]  # fmt: skip


def test_a_run_stopped_twice_stops_its_worlds(tmp_path: Path, worlds_root: Path) -> None:
    argv = ["--only", "fault: teardown", "--sample", "3", "--seed", "1", "--jobs", "2"]
    run = subprocess.Popen(
        [sys.executable, "-m", "bench.reliability", *argv, "--out", str(tmp_path / "r.json")],
        cwd=REPO,
        env={**os.environ, "FORGE_RELIABILITY_ROOT": str(worlds_root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert run.stdout is not None
    seen = []
    for line in run.stdout:  # the child's first verdict: its world is up
        seen.append(line)
        if "[fault: teardown] ok " in line or "[fault: teardown] FAIL" in line:
            break
    else:
        raise AssertionError("the run ended before its first case:\n" + "".join(seen[-30:]))
    child = [p for p in children(run.pid) if "bench.reliability" in Path(f"/proc/{p}/cmdline")
             .read_bytes().decode(errors="replace")]  # fmt: skip
    assert len(child) == 1, child
    os.kill(child[0], signal.SIGTERM)  # the child first, as a pkill of the run reaches it
    time.sleep(0.2)
    run.send_signal(signal.SIGTERM)  # then the parent, which terminates the child again
    rest, _ = run.communicate(timeout=120)
    assert run.returncode == 143, rest[-3000:]
    left = world_processes(worlds_root)
    for pid in left:  # not left for the tests after this one: SIGQUIT stops PostgreSQL at once
        os.kill(pid, signal.SIGQUIT)
    assert not left, "still running after the stop:\n" + "\n".join(left.values())
    assert not list(worlds_root.iterdir()), "a world's folder was left behind"
