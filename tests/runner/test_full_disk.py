"""A runner whose disk is full (its TMPDIR on a full tmpfs: under the dispatcher's state dir, the
process launcher puts it there) ends `failed` saying so — the machine's fault, retryable once
space is back — not "internal error"; its eof is still written (issue 13, "Dispatcher chaos")."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.events import EventType
from runner.workcopy import WorkCopy
from tests.support.clis import REPO
from tests.support.runner import RunnerProcess, RunnerResult, events_of


@pytest.mark.clis
@pytest.mark.postgres
def test_a_full_disk_ends_failed_naming_it(
    forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (CI does)"
    build = tmp_path / "build"
    shutil.copytree(REPO / "examples" / "hello-app", build)
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], check=True)
    try:
        # Full once the run has begun: a TMPDIR full from the start is skipped by Python's
        # `tempfile` (it falls back to /tmp), one that fills up mid-run is not.
        process, audit = forge_runner.start(
            ["deploy", "--build-dir", str(build), "--name", f"fd-{unique}"], {"TMPDIR": str(full)}
        )
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if '"type":"step_started"' in line:
                break
        with (full / "filler").open("wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        rest = forge_runner.finish(process, audit)
    finally:
        subprocess.run(["umount", "--lazy", str(full)], check=True)
    stdout = "".join(seen) + rest.stdout
    result = RunnerResult(rest.returncode, stdout, rest.stderr, events_of(stdout))
    assert result.returncode == 1, result.explain()
    error = str(result.result.get("error"))
    assert error.startswith("no space left on the runner's disk ("), error
    assert "free space and retry" in error
    assert result.eof.payload == {"outcome": "failed", "exit_code": 1}
    assert not [e for e in result.of(EventType.LOG) if "crashed" in str(e.payload)]


def test_a_git_refused_its_writes_on_a_full_disk_is_a_full_disk(tmp_path: Path) -> None:
    """Which write meets the full disk first is a race: Python's (ENOSPC itself) or git's, which
    says so only in its stderr. The work copy's git reports the latter as ENOSPC too (the suite
    once saw "internal error: Command '['git', 'init']' returned non-zero exit status 128")."""
    assert os.geteuid() == 0, "this test mounts a tmpfs: run it as root (CI does)"
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], check=True)
    try:
        copy = WorkCopy(full / "app")
        copy.root.mkdir()
        with (full / "filler").open("wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        with pytest.raises(OSError) as refused:
            copy.git("init", "-q", "-b", "main")
    finally:
        subprocess.run(["umount", "--lazy", str(full)], check=True)
    assert refused.value.errno == errno.ENOSPC, refused.value
    assert refused.value.filename == str(full / "app")
    assert isinstance(refused.value.__cause__, subprocess.CalledProcessError)
