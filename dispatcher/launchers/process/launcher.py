"""The local-process launcher: one `forge-runner` process per deploy attempt, the embedded
default when no Docker engine answers.

Everything about an attempt lives in `<workdir>/forge-deploy-<id>-<attempt>/` (0700), so a
restarted dispatcher finds it again:

    launch.json    deployment id, attempt, the wrapper's pid and start time (written at launch)
    secrets.env    spec.secrets, 0600: the runner reads it (FORGE_ENV_FILE); never in its env
    resume.jsonl   spec.resume_events, when set (`--resume`)
    stdout.jsonl   the runner's events;  stderr.log: its human log
    runner.json    the runner's pid and start time (written by the wrapper)
    exit.json      its exit status (written by the wrapper once it and its group are gone)
    home/, tmp/    its private HOME and TMPDIR (its working directory)

The runner runs under `_wrap.py`, in a session of its own: killing the dispatcher leaves it
running, and its exit status still reaches `exit.json`. `terminate` signals the runner's process
group (SIGTERM, grace, SIGKILL). The build directory is passed as it is (a process cannot be
given a read-only view of it without a mount namespace; the runner only reads it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dispatcher.core.ports import Exit, Handle, Launcher, RunSpec, attempt_name, check_attempt
from dispatcher.launchers.common import format_env_file
from dispatcher.launchers.process._wrap import start_time
from dispatcher.launchers.process.plan import ProcessPlan, default_base_env, process_plan
from runner.events import DeploymentId

DEFAULT_RUNNER_ARGV = (sys.executable, "-m", "runner.cli")
_PREFIX = "forge-deploy-"
_TAIL_BYTES = 256 * 1024


class AttemptStateError(RuntimeError):
    """A file of an attempt folder is unreadable or malformed (edited or damaged by hand)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise AttemptStateError(f"{path} is unreadable or malformed: {e}") from e
    if not isinstance(data, dict):
        raise AttemptStateError(f"{path} is malformed: expected a JSON object")
    return data


def _alive(pid: int | None, start: int | None) -> bool:
    """The process `pid` still runs (not a zombie) and is the one that started at `start`."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


def _identity(name: str) -> tuple[DeploymentId, int] | None:
    """(deployment id, attempt) of an attempt folder named `forge-deploy-<id>-<attempt>`."""
    if not name.startswith(_PREFIX):
        return None
    deployment_id, _, attempt = name[len(_PREFIX) :].rpartition("-")
    if not attempt.isdigit():
        return None
    try:
        found = check_attempt(deployment_id, int(attempt))
    except ValueError:
        return None
    return found if attempt_name(*found) == name else None


def _write_private(path: Path, text: str, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock (flock) on `path`: one launch per attempt, across threads and
    processes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class ProcessLauncher(Launcher):
    name = "process"

    def __init__(
        self,
        workdir: Path,
        runner_argv: Sequence[str] = DEFAULT_RUNNER_ARGV,
        *,
        base_env: Mapping[str, str] | None = None,
        poll_s: float = 0.02,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.runner_argv = tuple(runner_argv)
        self.base_env = dict(default_base_env() if base_env is None else base_env)
        self.poll_s = poll_s
        self._sleep = sleep
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    # ---- the attempt folder ---------------------------------------------------------------

    def _folder(self, handle: Handle) -> Path:
        return self.workdir / attempt_name(handle.deployment_id, handle.attempt)

    def _handle(self, folder: Path) -> Handle | None:
        record = _read_json(folder / "launch.json")
        if record is None:
            return None
        identity = check_attempt(str(record["deployment_id"]), int(record["attempt"]))
        return Handle(self.name, *identity, str(record["pid"]))

    def _wrapper_alive(self, folder: Path) -> bool:
        self._reap()
        record = _read_json(folder / "launch.json")
        return record is not None and _alive(record.get("pid"), record.get("start"))

    def _reap(self) -> None:
        """Collect the exit status of our own finished wrappers (no zombies left)."""
        with self._lock:
            for key, child in list(self._children.items()):
                if child.poll() is not None:
                    del self._children[key]

    def _ended(self, folder: Path) -> bool:
        if (folder / "exit.json").exists():
            return True
        if self._wrapper_alive(folder):
            return False
        runner = _read_json(folder / "runner.json") or {}
        return not _alive(runner.get("pid"), runner.get("start"))

    # ---- Launcher --------------------------------------------------------------------------

    def launch(self, spec: RunSpec) -> Handle:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        plan = process_plan(spec, self.workdir, self.runner_argv, self.base_env)
        plan.attempt_dir.mkdir(mode=0o700, exist_ok=True)
        with _locked(plan.attempt_dir / "lock"):
            existing = self._handle(plan.attempt_dir) or self._orphan(plan.attempt_dir)
            if existing is not None:
                return existing  # launched before (by us or an earlier dispatcher): adopt it
            return self._start(spec, plan)

    def _orphan(self, folder: Path) -> Handle | None:
        """A wrapper started by a dispatcher that died before writing launch.json: its
        runner.json names it; record it and adopt it."""
        runner = _read_json(folder / "runner.json")
        identity = _identity(folder.name)
        if runner is None or identity is None:
            return None
        wrapper, start = runner.get("wrapper"), runner.get("wrapper_start")
        # Adopt what ended, what runs, and a runner running on without its wrapper (`wait`
        # will then say "lost"); when nothing runs and nothing ended, start afresh.
        if (
            not (folder / "exit.json").exists()
            and not _alive(wrapper, start)
            and not _alive(runner.get("pid"), runner.get("start"))
        ):
            return None
        self._record(folder, *identity, wrapper, start)
        return Handle(self.name, *identity, str(wrapper))

    def _record(
        self, folder: Path, deployment_id: str, attempt: int, pid: int | None, start: int | None
    ) -> None:
        record = {"deployment_id": deployment_id, "attempt": attempt, "pid": pid, "start": start}
        tmp = folder / "launch.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(folder / "launch.json")

    def _start(self, spec: RunSpec, plan: ProcessPlan) -> Handle:
        for stale in ("runner.json", "exit.json"):
            with contextlib.suppress(FileNotFoundError):
                (plan.attempt_dir / stale).unlink()
        _write_private(plan.secrets_file, format_env_file(spec.secrets), 0o600)
        if plan.resume_file is not None and spec.resume_events is not None:
            _write_private(plan.resume_file, spec.resume_events, 0o600)
        for folder in (plan.home, plan.tmp):
            folder.mkdir(mode=0o700, exist_ok=True)
        with plan.stdout.open("wb") as out, plan.stderr.open("wb") as err:
            child = subprocess.Popen(
                plan.argv,
                env=plan.env,
                cwd=plan.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # outlives the dispatcher; no terminal signal reaches it
                close_fds=True,
            )
        self._record(
            plan.attempt_dir, spec.deployment_id, spec.attempt, child.pid, start_time(child.pid)
        )
        with self._lock:
            self._children[spec.name] = child
        return Handle(self.name, spec.deployment_id, spec.attempt, str(child.pid))

    def stream(self, handle: Handle) -> Iterator[str]:
        folder = self._folder(handle)
        try:
            source = (folder / "stdout.jsonl").open("rb")
        except FileNotFoundError:
            return
        with source:
            buffer = b""
            idle = 0.002  # doubles while nothing comes, up to poll_s: a first line is seen soon
            while True:
                chunk = source.read(65536)
                if chunk:
                    idle = 0.002
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", errors="replace")
                    continue
                if self._ended(folder):
                    buffer += source.read()  # what was written before the end was seen
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        yield line.decode("utf-8", errors="replace")
                    if buffer:
                        yield buffer.decode("utf-8", errors="replace")
                    return
                self._sleep(idle)
                idle = min(idle * 2, self.poll_s)

    def _exit(self, folder: Path) -> Exit | None:
        status = _read_json(folder / "exit.json")
        if status is None:
            return None
        code = status.get("code")
        killed = status.get("signal") is not None
        return Exit(code if isinstance(code, int) else None, "killed" if killed else None)

    def wait(self, handle: Handle, timeout_s: float | None = None) -> Exit:
        folder = self._folder(handle)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            done = self._exit(folder)
            if done is not None:
                return done
            if self._ended(folder):
                return self._exit(folder) or Exit(None, "lost")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"{folder.name} still runs after {timeout_s} s")
            self._wait_wrapper(folder, left)

    def _wait_wrapper(self, folder: Path, timeout_s: float | None) -> None:
        """Block until the wrapper exits or `timeout_s` passes (a pidfd; polling without)."""
        record = _read_json(folder / "launch.json") or {}
        pid = record.get("pid")
        step = self.poll_s if timeout_s is None else min(self.poll_s, timeout_s)
        if not isinstance(pid, int) or not hasattr(os, "pidfd_open"):
            self._sleep(step)
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError:
            self._sleep(step)  # pidfds unavailable here (old kernel, seccomp): poll
            return
        try:
            if not _alive(pid, record.get("start")):
                return  # the pid was reused before the pidfd was opened
            # Bounded, so an orphaned runner (wrapper gone) is still noticed by _ended.
            select.select([fd], [], [], 1.0 if timeout_s is None else min(timeout_s, 1.0))
        finally:
            os.close(fd)
        self._reap()

    def stderr_tail(self, handle: Handle, lines: int = 50) -> str:
        path = self._folder(handle) / "stderr.log"
        try:
            with path.open("rb") as source:
                size = source.seek(0, os.SEEK_END)
                source.seek(max(0, size - _TAIL_BYTES))
                data = source.read()
        except FileNotFoundError:
            return ""
        text = data.decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""

    def _runner(self, folder: Path, wait_s: float = 10.0) -> dict[str, Any] | None:
        """The runner's pid record; waits (briefly) while the wrapper is still starting it."""
        deadline = time.monotonic() + wait_s
        while True:
            runner = _read_json(folder / "runner.json")
            if runner is not None:
                return runner
            if (folder / "exit.json").exists() or not self._wrapper_alive(folder):
                return None
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{folder.name}: the wrapper did not start the runner")
            self._sleep(self.poll_s)

    def _signal(self, folder: Path, signum: signal.Signals) -> None:
        runner = self._runner(folder)
        if runner is None or (folder / "exit.json").exists():
            return
        pid, start = runner.get("pid"), runner.get("start")
        if not isinstance(pid, int):
            raise AttemptStateError(f"{folder / 'runner.json'} is malformed: no pid")
        # Safe against pid reuse: while exit.json is absent the wrapper has not reaped the
        # runner, so its pid (the group id) is still its own; when the wrapper is gone, the
        # start time tells.
        if not self._wrapper_alive(folder) and not _alive(pid, start):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)

    def terminate(self, handle: Handle, grace_s: float) -> None:
        folder = self._folder(handle)
        if not folder.exists() or self._ended(folder):
            return
        self._signal(folder, signal.SIGTERM)
        try:
            self.wait(handle, grace_s)
            return
        except TimeoutError:
            pass
        self._signal(folder, signal.SIGKILL)
        self.wait(handle, 30.0)

    def remove(self, handle: Handle) -> None:
        folder = self._folder(handle)
        if not folder.exists():
            return
        if not self._ended(folder):
            self._signal(folder, signal.SIGKILL)
            self.wait(handle, 30.0)
        with contextlib.suppress(FileNotFoundError):
            (folder / "secrets.env").unlink()
        shutil.rmtree(folder, ignore_errors=False)
        self._reap()

    def running(self) -> list[Handle]:
        """Every attempt folder: running, exited, or left half-launched by a dispatcher that
        died (ref ""; `wait` then says "lost"), until `remove`."""
        self._reap()
        if not self.workdir.is_dir():
            return []
        found = []
        for folder in sorted(self.workdir.iterdir()):
            identity = _identity(folder.name)
            if identity is None or not folder.is_dir():
                continue
            found.append(self._handle(folder) or Handle(self.name, *identity, ""))
        return found

    def health(self) -> str | None:
        program = self.runner_argv[0]
        if shutil.which(program) is None:
            return f"the runner program {program!r} is not found or not executable"
        try:
            self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            return f"the launcher's workdir {self.workdir} cannot be made: {e}"
        if not os.access(self.workdir, os.W_OK | os.X_OK):
            return f"the launcher's workdir {self.workdir} is not writable"
        return None
