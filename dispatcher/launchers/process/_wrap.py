"""Runs one forge-runner and keeps its exit status on disk, so it outlives the dispatcher.

    python -I -S _wrap.py <attempt dir> -- <runner argv...>

The process launcher starts this in a session of its own (it survives a dispatcher killed with
SIGKILL). The runner is its child in a process group of its own: the launcher signals that group
(SIGTERM, then SIGKILL), never this wrapper, which ignores SIGTERM/SIGINT/SIGHUP. When the runner
has exited, the wrapper kills what is left of its group (git, the CLIs: as when a container's
first process exits), then writes `exit.json` (`{"code": n, "signal": s|null}`) atomically and
exits. `runner.json` (`{"pid", "start", "wrapper", "wrapper_start"}`; a start is the kernel's
start time, against pid reuse) is written as soon as the runner is started. stdout and stderr
are inherited: the launcher's files.

Standard library only, run with `-I -S`: it starts in a few milliseconds and imports nothing of
the project.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from types import FrameType


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def write_json(path: Path, data: dict[str, int | None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as out:
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A handler, not SIG_IGN: an ignored signal would stay ignored in the runner after exec."""


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: _wrap.py <attempt dir> -- <command...>", file=sys.stderr)
        return 2
    folder, command = Path(argv[1]), argv[3:]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ignore)
    try:  # posix_spawn: no subprocess import, the runner starts a few ms sooner
        pid = os.posix_spawnp(command[0], command, dict(os.environ), setpgroup=0)
    except OSError as e:
        print(f"forge launcher: cannot start {command[0]}: {e}", file=sys.stderr)
        write_json(folder / "exit.json", {"code": 127, "signal": None})
        return 0
    write_json(
        folder / "runner.json",
        {
            "pid": pid,
            "start": start_time(pid),
            "wrapper": os.getpid(),
            "wrapper_start": start_time(os.getpid()),
        },
    )
    # Wait without reaping: while the runner is a zombie its pid (the group id) cannot be reused,
    # so killing the rest of its group is safe.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        write_json(folder / "exit.json", {"code": 128 - code, "signal": -code})
    else:
        write_json(folder / "exit.json", {"code": code, "signal": None})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
