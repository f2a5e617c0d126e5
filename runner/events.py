"""The runner's event stream: one versioned JSON schema, defined here, consumed by the dispatcher.

Every line the runner writes to stdout is one event:
`{"v": 1, "type": ..., "deploy_id": ..., "seq": n, "ts": "...Z", "payload": {...}}`.
`seq` rises by one from 1 within a run; `ts` is UTC. The stream always ends with `eof`, written
from a `finally`, so a consumer never waits for a terminator that will not come. Every string is
masked before it is written (`runner.masking`). Human logs go to stderr, never here.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NewType, TextIO

from runner.masking import Masker

VERSION = 1

# A deployment's id: what the dispatcher makes ("dep_" + 24 hex), what the runner makes when run
# by hand ("local-" + 12 hex), and any id a person gave FORGE_DEPLOY_ID. It names containers,
# Jobs, files and URLs, so its characters are few; the dot stays because the runner has always
# taken it. Defined here, once: both the runner and the dispatcher import this module.
DEPLOYMENT_ID_RE = r"[A-Za-z0-9_.-]{1,64}"
DEPLOYMENT_ID_RULE = "1-64 of A-Z a-z 0-9 _ . -"
DeploymentId = NewType("DeploymentId", str)
_DEPLOYMENT_ID = re.compile(DEPLOYMENT_ID_RE)


def deployment_id(raw: object) -> DeploymentId:
    """`raw` as a deployment id; ValueError naming the rule when it is not one."""
    if not isinstance(raw, str) or not _DEPLOYMENT_ID.fullmatch(raw):
        raise ValueError(f"deployment id {raw!r:.80} is malformed: {DEPLOYMENT_ID_RULE}")
    return DeploymentId(raw)


class EventType(StrEnum):
    STEP_STARTED = "step_started"
    STEP_PROGRESS = "step_progress"
    STEP_FINISHED = "step_finished"
    STEP_SKIPPED = "step_skipped"
    STEP_FAILED = "step_failed"
    LOG = "log"
    CHECKPOINT = "checkpoint"
    HEARTBEAT = "heartbeat"
    RESULT = "result"
    EOF = "eof"


class Outcome(StrEnum):
    """How a run ended; each has one exit code (documented in the README)."""

    LIVE = "live"
    FAILED = "failed"
    BAD_INPUT = "bad_input"
    UNHEALTHY = "unhealthy"
    CANCELLED = "cancelled"
    PLANNED = "planned"
    REMOVED = "removed"


EXIT_CODES: dict[Outcome, int] = {
    Outcome.LIVE: 0,
    Outcome.PLANNED: 0,
    Outcome.REMOVED: 0,
    Outcome.FAILED: 1,
    Outcome.BAD_INPUT: 2,
    Outcome.UNHEALTHY: 3,
    Outcome.CANCELLED: 4,
}

# The payload keys each event type must carry (more are allowed).
REQUIRED: dict[EventType, tuple[str, ...]] = {
    EventType.STEP_STARTED: ("step",),
    EventType.STEP_PROGRESS: ("step", "message"),
    EventType.STEP_FINISHED: ("step", "elapsed_s"),
    EventType.STEP_SKIPPED: ("step", "reason"),
    EventType.STEP_FAILED: ("step", "error"),
    EventType.LOG: ("level", "message"),
    EventType.CHECKPOINT: ("key", "value"),
    EventType.HEARTBEAT: (),
    EventType.RESULT: ("outcome",),
    EventType.EOF: ("outcome", "exit_code"),
}


class EventFormatError(ValueError):
    """A line is not an event of this schema; the message says why."""


@dataclass(frozen=True)
class Event:
    v: int
    type: EventType
    deploy_id: str
    seq: int
    ts: str
    payload: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": self.v,
                "type": self.type.value,
                "deploy_id": self.deploy_id,
                "seq": self.seq,
                "ts": self.ts,
                "payload": self.payload,
            },
            separators=(",", ":"),
            sort_keys=False,
        )


def parse_event(line: str) -> Event:
    """One stdout line back into an `Event`; raises `EventFormatError` naming the problem."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as e:
        raise EventFormatError(f"not JSON: {e.msg}") from e
    if not isinstance(raw, dict):
        raise EventFormatError("not a JSON object")
    if raw.get("v") != VERSION:
        raise EventFormatError(f"unsupported event version {raw.get('v')!r}")
    try:
        kind = EventType(str(raw.get("type")))
    except ValueError as e:
        raise EventFormatError(f"unknown event type {raw.get('type')!r}") from e
    seq, ts, deploy_id, payload = (
        raw.get("seq"),
        raw.get("ts"),
        raw.get("deploy_id"),
        raw.get("payload"),
    )
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise EventFormatError("seq must be a positive integer")
    if not isinstance(ts, str) or not ts.endswith("Z"):
        raise EventFormatError("ts must be an ISO 8601 UTC time ending in Z")
    if not isinstance(deploy_id, str) or not deploy_id:
        raise EventFormatError("deploy_id must be a non-empty string")
    if not isinstance(payload, dict):
        raise EventFormatError("payload must be an object")
    missing = [k for k in REQUIRED[kind] if k not in payload]
    if missing:
        raise EventFormatError(f"{kind.value} payload lacks {', '.join(missing)}")
    return Event(VERSION, kind, deploy_id, seq, ts, payload)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _masked(value: Any, masker: Masker) -> Any:
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v, masker) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, masker) for v in value]
    return value


class EventWriter:
    """Writes masked events to one stream; thread-safe; `seq` rises by one per event.

    `copy`, when given, gets every line first: a file the dispatcher reads when the stream's
    carrier lost lines (a Docker engine killed between reading a line from the container and
    writing it to its log). A copy that fails to take a line is dropped; the stream goes on."""

    def __init__(
        self,
        stream: TextIO,
        deploy_id: str,
        masker: Masker,
        now: Callable[[], str] = utc_now,
        monotonic: Callable[[], float] | None = None,
        copy: TextIO | None = None,
    ) -> None:
        import time

        self._stream = stream
        self._copy = copy
        self.deploy_id = deploy_id
        self._masker = masker
        self._now = now
        self._monotonic = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False
        self.last_write = self._monotonic()

    def emit(self, kind: EventType, /, **payload: Any) -> Event | None:
        with self._lock:
            if self._closed:
                return None
            self._seq += 1
            event = Event(
                VERSION,
                kind,
                self.deploy_id,
                self._seq,
                self._now(),
                _masked(payload, self._masker),
            )
            line = self._masker.mask(event.to_json())  # belt and braces: keys and ids too
            self._copy_line(line)
            self._stream.write(line + "\n")
            self._stream.flush()
            self.last_write = self._monotonic()
            if kind is EventType.EOF:
                self._closed = True
            return event

    def _copy_line(self, line: str) -> None:
        if self._copy is None:
            return
        try:
            self._copy.write(line + "\n")
            self._copy.flush()
        except OSError as e:  # a full or vanished file: the stream is the channel, it goes on
            print(f"forge-runner: the events copy stopped taking lines: {e}", file=sys.stderr)
            self._copy = None

    def eof(self, outcome: Outcome) -> None:
        self.emit(EventType.EOF, outcome=outcome.value, exit_code=EXIT_CODES[outcome])

    @property
    def closed(self) -> bool:
        return self._closed


class Heartbeat:
    """Emits a heartbeat whenever the stream has been quiet for `interval` seconds."""

    def __init__(self, writer: EventWriter, interval: float) -> None:
        self._writer = writer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval / 4):
            if self._writer._monotonic() - self._writer.last_write >= self._interval:
                self._writer.emit(EventType.HEARTBEAT)
