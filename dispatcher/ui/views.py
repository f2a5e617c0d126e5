"""What the pages show, computed from the store's rows and events: pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dispatcher.model import TERMINAL, Deployment, Status, StoredEvent
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
__all__ = ["ICONS", "STATUS_ICONS", "Row", "log_text", "rows"]


@dataclass(frozen=True)
class Row:
    dep: Deployment
    position: int | None  # place in the queue (1 = next), for queued ones
    waits_for: Deployment | None = None  # the same project's deploy ahead of a queued one

    @property
    def icon(self) -> str:
        return STATUS_ICONS[self.dep.status.value]


def rows(deps: Iterable[Deployment], status: str | None) -> tuple[list[Row], list[Row]]:
    """(in flight: running first, then queued in the order they will be claimed; the rest,
    newest first), of the deployments (newest first) whose status is `status` (all when
    None). The position is the queue's order; a deploy of a project already running or
    queued earlier waits for that one however early it stands (`waits_for`: a project deploys
    one at a time, in order)."""
    every = list(deps)
    listed = [d for d in every if status is None or d.status.value == status]
    running = sorted((d for d in listed if d.status is Status.RUNNING), key=lambda d: d.created_at)
    rest = sorted(
        (d for d in listed if d.status not in IN_FLIGHT), key=lambda d: d.created_at, reverse=True
    )
    ahead = {d.project_id: d for d in every if d.status is Status.RUNNING}
    waits: dict[str, Deployment | None] = {}
    for d in _claim_order(every):
        waits[d.id] = ahead.get(d.project_id)
        ahead[d.project_id] = d
    flight = [Row(d, None) for d in running] + [
        Row(d, i + 1, waits[d.id]) for i, d in enumerate(_claim_order(listed))
    ]
    return flight, [Row(d, None) for d in rest]


def _claim_order(deps: Iterable[Deployment]) -> list[Deployment]:
    """The queued ones in the order the store claims them: a retry is queued again when it is
    (`updated_at`); ties keep the store's order, oldest first (`deps` come newest first)."""
    return sorted(
        reversed([d for d in deps if d.status is Status.QUEUED]), key=lambda d: d.updated_at
    )


def line_text(event: StoredEvent) -> str | None:
    """The log line an event shows, or None: what the page's script shows (`ui.js`). A step's
    start and end are not lines: the runner logs both already, and the steps show them."""
    p = event.payload
    if event.type == "log":
        text = str(p.get("message", ""))
    elif event.type == "step_progress":
        text = f"[{p.get('step')}] {p.get('message', '')}"
    elif event.type == "step_skipped":
        text = f"[{p.get('step')}] skipped: {p.get('reason', '')}"
    elif event.type == "step_failed":
        text = f"[{p.get('step')}] FAILED: {p.get('error', '')}"
    elif event.type == "status":
        text = f"status {p.get('status')}" + (f": {p['error']}" if p.get("error") else "")
    elif event.type == "result":
        text = f"result: {p.get('outcome')}"
    else:
        return None
    parts = [s for s in text.split("\r") if s]
    return parts[-1] if parts else ""


def log_text(events: Iterable[StoredEvent]) -> str:
    """The whole log as plain text (the download), carriage-return progress collapsed."""
    lines = []
    for e in events:
        text = line_text(e)
        if text is not None:
            lines.append(f"{e.ts} #{e.id} a{e.attempt} {text}")
    return "\n".join(lines) + ("\n" if lines else "")


def failure(dep: Deployment, tl: Timeline) -> tuple[str, str] | None:
    """(failing step, the provider's message) for a deployment that ended badly."""
    if dep.status not in TERMINAL or dep.status is Status.LIVE:
        return None
    step = tl.failed_step or dep.step or "deploy"
    return step, tl.failed_message or dep.error or dep.status.value
