"""The runner, run for real against the sandbox: in-process contexts and `forge-runner` processes.

`runner_env(sandbox)` is exactly what `forge-sandbox env` prints, plus the test knobs (short
HTTP timeout, fast polling, backoff scaled to almost nothing so no test waits for a real
`Retry-After`). `RunnerProcess.run` starts `forge-runner` under the strace loopback audit and
parses its stdout as events; every output it captured is kept for the session's secret scan.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import settings as runner_settings
from runner.checkpoints import Checkpoints
from runner.context import RunContext
from runner.events import Event, EventType, EventWriter, parse_event
from runner.http import RetryPolicy
from runner.masking import Masker
from tests.support.loopback import strace_prefix, violations
from tests.support.sandbox import SandboxProcess

REPO = Path(__file__).resolve().parents[2]

TEST_KNOBS = {
    "FORGE_HTTP_TIMEOUT_S": "2",
    "FORGE_POLL_INTERVAL_S": "0.02",
    "FORGE_BACKOFF_SCALE": "0.001",
    "FORGE_HEARTBEAT_S": "1",
}

# Every stdout/stderr a runner produced in this session: scanned for secrets at the end.
CAPTURED: list[str] = []


def sandbox_env(sandbox: SandboxProcess) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "env", "--state-dir", str(sandbox.state_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def runner_env(sandbox: SandboxProcess, **extra: str) -> dict[str, str]:
    return {**sandbox_env(sandbox), **TEST_KNOBS, **extra}


def fast_sleep(seconds: float) -> None:
    """Injected sleep for in-process tests: real time passes (the sandbox's clock needs it) but
    never more than 50 ms, whatever a provider asked for."""
    time.sleep(min(seconds, 0.05))


def make_context(env: dict[str, str]) -> tuple[RunContext, io.StringIO]:
    """An in-process RunContext against the sandbox; its events go to the returned buffer."""
    settings = runner_settings.load(env)
    masker = Masker()
    for secret in settings.secrets():
        masker.register(secret)
    stream = io.StringIO()
    writer = EventWriter(stream, settings.run.deploy_id, masker)
    checkpoints = Checkpoints()
    checkpoints.attach(writer)
    ctx = RunContext(
        settings,
        writer,
        masker,
        checkpoints,
        sleep=fast_sleep,
        policy=RetryPolicy(scale=settings.run.backoff_scale),
    )
    return ctx, stream


def events_of(text: str) -> list[Event]:
    return [parse_event(line) for line in text.splitlines() if line.strip()]


@dataclass
class RunnerResult:
    returncode: int
    stdout: str
    stderr: str
    events: list[Event] = field(default_factory=list)

    def of(self, kind: EventType) -> list[Event]:
        return [e for e in self.events if e.type is kind]

    @property
    def eof(self) -> Event:
        last = self.events[-1]
        assert last.type is EventType.EOF, f"stream did not end with eof: {last}"
        return last

    @property
    def result(self) -> dict[str, Any]:
        found = self.of(EventType.RESULT)
        assert found, f"no result event; stderr:\n{self.stderr[-3000:]}"
        return found[-1].payload

    def checkpoints(self) -> dict[str, Any]:
        return {str(e.payload["key"]): e.payload["value"] for e in self.of(EventType.CHECKPOINT)}

    def explain(self) -> str:
        return (
            f"exit {self.returncode}\nstdout tail:\n{self.stdout[-4000:]}\n"
            f"stderr tail:\n{self.stderr[-4000:]}"
        )


class RunnerProcess:
    """`forge-runner` as the container runs it, under the loopback audit."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.runs = 0

    def _full_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TZ") or k.startswith("PYTHON")
        }
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(
            [str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent), keep["PATH"]]
        )
        tmp = self.workdir / "tmp"  # a killed runner's work copy stays inside the test's tmp_path
        tmp.mkdir(exist_ok=True)
        # This checkout's runner, not whichever one the venv's editable install points at (the
        # runner runs in a temporary cwd, where `python -m runner.cli` would find that one).
        pythonpath = os.pathsep.join(p for p in (str(REPO), keep.get("PYTHONPATH")) if p)
        base = {**keep, "HOME": str(home), "PATH": path, "TMPDIR": str(tmp)}
        base["PYTHONPATH"] = pythonpath
        return {**base, **self.env, **(extra or {})}

    def start(
        self, args: list[str], extra_env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[str], Path]:
        self.runs += 1
        audit = self.workdir / f"runner-strace-{self.runs}.log"
        process = subprocess.Popen(
            [*strace_prefix(audit), sys.executable, "-m", "runner.cli", *args],
            env=self._full_env(extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=self.workdir,
            start_new_session=True,  # its own process group: a kill takes git and the CLIs too
        )
        return process, audit

    def finish(
        self, process: subprocess.Popen[str], audit: Path, timeout: float = 300
    ) -> RunnerResult:
        stdout, stderr = process.communicate(timeout=timeout)
        CAPTURED.extend([stdout, stderr])
        leaks = violations(audit)
        assert not leaks, "forge-runner reached beyond loopback:\n" + "\n".join(leaks[:20])
        return RunnerResult(process.returncode, stdout, stderr, events_of(stdout))

    def run(
        self, args: list[str], extra_env: dict[str, str] | None = None, timeout: float = 300
    ) -> RunnerResult:
        process, audit = self.start(args, extra_env)
        return self.finish(process, audit, timeout)


def runner_pid(process: subprocess.Popen[str]) -> int:
    """The runner's own pid: the child of strace running `runner.cli` (strace first forks a
    short-lived probe child, so the first child is not always the runner)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for _ in range(500):
        for pid in children.read_text().split() if children.exists() else []:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"runner.cli" in cmdline:
                return int(pid)
        time.sleep(0.01)
    raise AssertionError("forge-runner did not start under strace")


def kill_runner(process: subprocess.Popen[str]) -> None:
    """SIGKILL the runner and every process it started, as when a container dies."""
    os.killpg(process.pid, signal.SIGKILL)
