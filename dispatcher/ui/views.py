"""What the pages show, computed from the store's rows and events: pure, no I/O.

The log is made here once, for the page and the download alike: each event that is a line
becomes a `LogLine` (its text read by `ansi.show`: colours, a rewrite of the line before it),
the page's script draws what `LogLine.wire` says, and `log_text` writes the same lines as plain
text, rewrites applied as the page applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dispatcher.model import TERMINAL, Deployment, Status, StoredEvent
from dispatcher.ui import ansi
from dispatcher.ui.scopes import Grants
from dispatcher.ui.timeline import ICONS, Timeline

IN_FLIGHT = (Status.RUNNING, Status.QUEUED)
# Deployment status -> (icon, word), the word always shown next to the icon.
STATUS_ICONS = {
    "queued": "○",
    "running": "◔",
    "live": "✓",
    "unhealthy": "!",
    "failed": "✗",
    "cancelled": "■",
}
# The events after which the page's summary (steps, status, URLs) is read again.
SUMMARY_EVENTS = frozenset(
    {"step_started", "step_finished", "step_failed", "step_skipped", "status", "result", "eof"}
)
__all__ = ["ICONS", "STATUS_ICONS", "LogLine", "Row", "failure", "log_lines", "log_text", "rows"]


@dataclass(frozen=True)
class Row:
    dep: Deployment
    position: int | None  # place in the queue (1 = next), for queued ones
    waits_for: Deployment | None = None  # the same project's deploy ahead of a queued one

    @property
    def icon(self) -> str:
        return STATUS_ICONS[self.dep.status.value]


def rows(
    deps: Iterable[Deployment], status: str | None, grants: Grants | None = None
) -> tuple[list[Row], list[Row]]:
    """(in flight: running first, then queued in the order they will be claimed; the rest,
    newest first), of the deployments (newest first) whose status is `status` (all when
    None) and that `grants` allow (all when None). The position is the whole queue's order; a
    deploy of a project already running or queued earlier waits for that one however early it
    stands (`waits_for`: a project deploys one at a time, in order)."""
    every = list(deps)
    listed = [
        d
        for d in every
        if (status is None or d.status.value == status) and (grants is None or grants.allows(d))
    ]
    running = sorted((d for d in listed if d.status is Status.RUNNING), key=lambda d: d.created_at)
    rest = sorted(
        (d for d in listed if d.status not in IN_FLIGHT), key=lambda d: d.created_at, reverse=True
    )
    ahead = {d.project_id: d for d in every if d.status is Status.RUNNING}
    waits: dict[str, Deployment | None] = {}
    positions: dict[str, int] = {}
    for i, d in enumerate(_claim_order(every)):
        waits[d.id] = ahead.get(d.project_id)
        ahead[d.project_id] = d
        positions[d.id] = i + 1
    flight = [Row(d, None) for d in running] + [
        Row(d, positions[d.id], waits[d.id]) for d in _claim_order(listed)
    ]
    return flight, [Row(d, None) for d in rest]


def _claim_order(deps: Iterable[Deployment]) -> list[Deployment]:
    """The queued ones in the order the store claims them: a retry is queued again when it is
    (`updated_at`); ties keep the store's order, oldest first (`deps` come newest first)."""
    return sorted(
        reversed([d for d in deps if d.status is Status.QUEUED]), key=lambda d: d.updated_at
    )


# -- the log ------------------------------------------------------------------------------------
def line_text(event: StoredEvent) -> str | None:
    """The raw text of the log line an event is, or None. A step's start and end are not
    lines: the runner logs both already, and the steps show them."""
    p = event.payload
    if event.type == "log":
        return str(p.get("message", ""))
    if event.type == "step_progress":
        return f"[{p.get('step')}] {p.get('message', '')}"
    if event.type == "step_skipped":
        return f"[{p.get('step')}] skipped: {p.get('reason', '')}"
    if event.type == "step_failed":
        return f"[{p.get('step')}] FAILED: {p.get('error', '')}"
    if event.type == "status":
        return f"status {p.get('status')}" + (f": {p['error']}" if p.get("error") else "")
    if event.type == "result":
        return f"result: {p.get('outcome')}"
    return None


@dataclass(frozen=True)
class LogLine:
    id: int
    attempt: int
    ts: str
    type: str
    level: str  # info | warning | error
    shown: ansi.Shown

    def wire(self) -> list[Any]:
        """What the page's script draws: [id, time of day, type, level, rewrites (0/1),
        segments], a segment [text, classes] (a lone unstyled one as its text)."""
        segments: Any = [list(s) for s in self.shown.segments]
        if len(segments) == 1 and not segments[0][1]:
            segments = segments[0][0]
        return [self.id, self.ts[11:19], self.type, self.level, int(self.shown.rewrites), segments]


def log_line(event: StoredEvent) -> LogLine | None:
    raw = line_text(event)
    if raw is None:
        return None
    level = str(event.payload.get("level") or ("error" if event.type == "step_failed" else "info"))
    level = level if level in ("warning", "error") else "info"
    return LogLine(event.id, event.attempt, event.ts, event.type, level, ansi.show(raw))


def log_lines(events: Iterable[StoredEvent]) -> list[LogLine]:
    return [line for line in map(log_line, events) if line is not None]


def log_text(events: Iterable[StoredEvent]) -> str:
    """The whole log as plain text (the download): the page's lines, a rewritten line as it
    was left, each as `<timestamp> #<event id> a<attempt> <text>`."""
    shown: list[tuple[LogLine, str]] = []
    for line in log_lines(events):
        if line.shown.rewrites and shown:
            shown[-1] = (shown[-1][0], line.shown.text)
        else:
            shown.append((line, line.shown.text))
    return "".join(f"{ln.ts} #{ln.id} a{ln.attempt} {text}\n" for ln, text in shown)


# -- the failure ----------------------------------------------------------------------------------
# A line of a provider's transcript that is its error: PostgreSQL's and the CLIs' severities.
_SEVERE = re.compile(r"^\s*(ERROR|FATAL|PANIC|Error|error)\b")


@dataclass(frozen=True)
class Failure:
    step: str
    headline: ansi.Shown  # what failed, the runner's sentence
    errors: tuple[ansi.Shown, ...]  # the transcript's error lines (the provider's message)
    transcript: ansi.Shown | None  # the whole output, folded; None when the headline is all

    @property
    def lines(self) -> int:
        return self.transcript.text.count("\n") + 1 if self.transcript else 0


def failure(dep: Deployment, tl: Timeline) -> Failure | None:
    """The failing step and its message of a deployment that ended badly: the runner's sentence
    first, then the provider's error lines, then the whole transcript (when it has several
    lines)."""
    if dep.status not in TERMINAL or dep.status is Status.LIVE:
        return None
    step = tl.failed_step or dep.step or "deploy"
    message = tl.failed_message or dep.error or dep.status.value
    first, _, more = message.partition("\n")
    if not more:
        return Failure(step, ansi.show(first), (), None)
    head, sep, rest = first.partition(": ")
    transcript = f"{rest}\n{more}" if sep else message
    errors = tuple(
        shown for line in transcript.split("\n") if _SEVERE.match((shown := ansi.show(line)).text)
    )
    return Failure(step, ansi.show(head if sep else first), errors, ansi.show(transcript))
