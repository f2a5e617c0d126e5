"""SIGTERM landing while the runner's main thread is inside the event writer (mid-emit): the
run still stops with its `result` and `eof`. The handler used to log from inside itself; it
then waited on the writer's lock held by the very code it interrupted, and the runner hung
until the grace period's SIGKILL (seen as a Kubernetes cancel ending without `eof`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from runner.events import EventType, parse_event
from tests.support.clis import REPO
from tests.support.runner import runner_env
from tests.support.sandbox import SandboxProcess

# A `forge-runner` run (`runner.cli._run`, all its wiring) whose work sends itself SIGTERM
# while holding the event writer's lock, then waits for the stop it must cause.
_MID_EMIT = textwrap.dedent(
    """
    import os, signal, time
    from runner import cli
    from runner.errors import Cancelled

    def work(ctx):
        with ctx.events._lock:  # the main thread mid-emit
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs here, in this thread, the lock held
        if not ctx.cancel.wait(20):
            raise RuntimeError("SIGTERM never stopped the run")
        raise Cancelled("stopped by SIGTERM")

    cli._run(work)
    """
)


def test_sigterm_mid_emit_stops_the_run_with_its_result_and_eof(sandbox: SandboxProcess) -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-c", _MID_EMIT],
            cwd=REPO,
            env=runner_env(sandbox),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the runner hung after SIGTERM mid-emit:\n{e.stdout!r}") from e
    events = [parse_event(line) for line in run.stdout.splitlines() if line.strip()]
    messages = [e.payload.get("message") for e in events if e.type is EventType.LOG]
    assert "SIGTERM: stopping at the next safe point" in messages, run.stdout + run.stderr
    assert events[-2].type is EventType.RESULT and events[-2].payload["outcome"] == "cancelled"
    assert events[-1].payload == {"outcome": "cancelled", "exit_code": 4}
    assert run.returncode == 4, run.stderr


# SIGTERM delivered to a worker thread while the main thread is blocked with no timeout (as the
# pipeline's `_join` waits for its branches). The kernel gives a process's signal to any thread
# that can take it: a main thread stopped for a moment (strace's syscall stops, a pending
# signal) passes it on. Python runs its handler only in the main thread, once that thread runs
# bytecode again: here, never.
_TO_A_WORKER = textwrap.dedent(
    """
    import signal, threading, time
    from runner.signals import on_sigterm

    stopped = threading.Event()
    on_sigterm(stopped.set)

    def worker():
        time.sleep(0.3)  # the main thread is blocked by now
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=worker).start()
    stopped.wait()  # no timeout: only the stop wakes it
    print("stopped")
    """
)


def test_sigterm_to_a_worker_thread_stops_a_main_thread_blocked_without_timeout() -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-c", _TO_A_WORKER],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError("a SIGTERM taken by a worker thread never stopped the run") from e
    assert run.stdout == "stopped\n" and run.returncode == 0, run.stderr
