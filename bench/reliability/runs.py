"""One bounded `forge-runner` run and the checks every case makes of it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.reliability.table import Verdict
from runner.events import Event, EventType, parse_event
from tests.support import secret_shapes
from tests.support.loopback import violations
from tests.support.runner import RunnerProcess, kill_runner

BOUND_S = 240.0  # a run still going after this is stuck


@dataclass
class Run:
    returncode: int | None  # None: it did not end within the bound and was killed
    stdout: str
    stderr: str
    events: list[Event] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    beyond_loopback: list[str] = field(default_factory=list)

    @property
    def eof(self) -> Event | None:
        return self.events[-1] if self.events and self.events[-1].type is EventType.EOF else None

    @property
    def outcome(self) -> str | None:
        return str(self.eof.payload["outcome"]) if self.eof else None

    @property
    def result(self) -> dict[str, Any]:
        found = [e.payload for e in self.events if e.type is EventType.RESULT]
        return found[-1] if found else {}

    def tail(self) -> str:
        return (self.stdout[-600:] + "\n--- stderr ---\n" + self.stderr[-900:]).strip()


def parse(stdout: str) -> tuple[list[Event], list[str]]:
    events, bad = [], []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            events.append(parse_event(line))
        except (ValueError, KeyError, TypeError):
            bad.append(line[:200])
    return events, bad


def run(
    runner: RunnerProcess,
    args: list[str],
    env: dict[str, str] | None = None,
    bound_s: float = BOUND_S,
    stop_after: Callable[[int, Event], bool] | None = None,
) -> Run:
    """`forge-runner ARGS` under the loopback audit, killed when it outlives `bound_s`, or
    SIGKILLed (with everything it started) right after the event `stop_after` picks."""
    process, audit = runner.start(args, env)
    assert process.stdout is not None
    seen: list[str] = []
    if stop_after is not None:
        for n, line in enumerate(process.stdout, start=1):
            seen.append(line)
            try:
                event = parse_event(line)
            except (ValueError, KeyError, TypeError):
                continue
            if stop_after(n, event):
                kill_runner(process)
                break
    returncode: int | None
    try:
        rest, stderr = process.communicate(timeout=bound_s)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        kill_runner(process)
        rest, stderr = process.communicate(timeout=60)
        returncode = None
    stdout = "".join(seen) + rest
    events, bad = parse(stdout)
    return Run(returncode, stdout, stderr, events, bad, violations(audit))


def check(verdict: Verdict, result: Run, secrets: list[str], killed: bool = False) -> None:
    """What holds for every run: it ends, with an `eof`, JSON only on stdout, rising `seq`s, no
    secret in any output, nothing beyond loopback."""
    if result.returncode is None:
        verdict.stuck.append(f"still running after {BOUND_S:.0f} s: {result.tail()}")
    elif result.eof is None and not killed:
        verdict.stuck.append(f"no eof (exit {result.returncode}): {result.tail()}")
    if result.bad_lines:
        verdict.other.append(f"non-event lines on stdout: {result.bad_lines[:3]}")
    seqs = [e.seq for e in result.events]
    if len(set(seqs)) != len(seqs) or seqs != sorted(seqs):
        verdict.duplicated.append("an event seq repeated or went back")
    output = result.stdout + result.stderr
    for secret in secrets:
        for form in {secret, json.dumps(secret)[1:-1]}:
            if form in output:
                verdict.leaked.append(f"secret {secret[:4]}...({len(secret)} chars) in output")
    verdict.leaked += [f"{hit} in output" for hit in secret_shapes.found(output)]
    if result.beyond_loopback:
        verdict.leaked.append(f"traffic beyond loopback: {result.beyond_loopback[:3]}")


def write_events(path: Path, result: Run) -> Path:
    path.write_text(result.stdout)
    return path
