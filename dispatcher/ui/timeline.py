"""A deployment's steps and timeline, from its stored events: pure functions, no I/O.

The runner reports sub-steps (`github.repo`, `supabase.migrations`, `vercel.build`, ...); the
page shows four lanes (GitHub, Supabase, Vercel, health), each a row of sub-step bars on one
time axis, so the Vercel build running beside Supabase provisioning, and the promote after the
migrations, are visible. Only the latest attempt's events count. The same `Timeline` feeds the
page's SVG (`dispatcher.ui.timeline_svg`) and the CLI's PNG (`dispatcher.ui.timeline_png`). A lane
with no step when the deployment ended is "not run", never "stopped": it did not start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.model import TERMINAL, Deployment, StoredEvent
from runner.providers.catalog import PROVIDERS

# One lane per provider (the runner's descriptors), then the health check.
LANES = (*(p.name for p in PROVIDERS), "health")
TITLES = {**{p.name: p.title for p in PROVIDERS}, "health": "Health"}
# The sub-step whose end finishes a lane.
LAST = {
    "github": "github.push",
    "supabase": "supabase.migrations",
    "vercel": "vercel.promote",
    "health": "health",
}
# State -> (icon, word): the word is always shown, so no state is told by color alone.
ICONS = {
    "pending": ("○", "waiting"),
    "running": ("◔", "running"),
    "done": ("✓", "done"),
    "skipped": ("↷", "skipped"),
    "failed": ("✗", "failed"),
    "stopped": ("■", "stopped"),
    "notrun": ("⊘", "not run"),
}
FILL = {"running": "#3b82f6", "done": "#16a34a", "failed": "#dc2626", "skipped": "#9ca3af",
        "stopped": "#f59e0b"}  # fmt: skip


def parse_ts(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


@dataclass
class Bar:
    step: str  # the runner's sub-step name
    lane: str
    start: float  # unix seconds
    end: float | None = None  # None: still running
    state: str = "running"  # running | done | failed | skipped | stopped


@dataclass
class Lane:
    name: str
    state: str = "pending"
    bars: list[Bar] = field(default_factory=list)
    start: float | None = None
    end: float | None = None  # None while running

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    @property
    def icon(self) -> str:
        return ICONS[self.state][0]

    @property
    def word(self) -> str:
        return ICONS[self.state][1]


@dataclass
class Timeline:
    lanes: list[Lane]
    start: float | None  # the first bar's start
    end: float  # the last end, or `now` while running
    failed_step: str | None = None
    failed_message: str | None = None


def lane_of(step: str) -> str:
    return step.split(".", 1)[0]


def build(events: Iterable[StoredEvent], dep: Deployment, now: float) -> Timeline:
    """The timeline of `dep`'s latest attempt from its events, as of `now`."""
    return build_from(events, dep.status in TERMINAL, dep.finished_at, now)


def from_public(events: Iterable[dict[str, Any]], dep: dict[str, Any], now: float) -> Timeline:
    """The same from the API's JSON (`GET /v1/deployments/{id}` and its events)."""
    stored = [
        StoredEvent(dep["id"], e["id"], e["attempt"], e["type"], e["ts"], e["payload"], e["seq"])
        for e in events
    ]
    return build_from(stored, dep["status"] in TERMINAL, dep.get("finished_at"), now)


def build_from(
    events: Iterable[StoredEvent], terminal: bool, finished_at: str | None, now: float
) -> Timeline:
    """The timeline of the latest attempt in `events` (of a deployment over when `terminal`,
    at `finished_at`), as of `now`."""
    listed = list(events)
    attempt = max((e.attempt for e in listed), default=0)
    open_bars: dict[str, Bar] = {}
    bars: list[Bar] = []
    failed_step = failed_message = None
    for e in listed:
        if e.attempt != attempt or "step" not in e.payload:
            continue
        step = str(e.payload["step"])
        at = parse_ts(e.ts)
        if e.type == "step_started":
            bar = Bar(step, lane_of(step), at)
            open_bars[step] = bar
            bars.append(bar)
        elif e.type in ("step_finished", "step_failed", "step_skipped"):
            bar = open_bars.pop(step) if step in open_bars else Bar(step, lane_of(step), at)
            if bar not in bars:
                bars.append(bar)
            bar.end = at
            bar.state = {"step_finished": "done", "step_failed": "failed"}.get(e.type, "skipped")
            if e.type == "step_failed" and failed_step is not None and _collateral(e):
                bar.state = "stopped"  # stopped because another step failed first
            if e.type == "step_failed" and failed_step is None:  # the first: the cause
                failed_step, failed_message = step, str(e.payload.get("error", ""))
    for bar in open_bars.values():
        if terminal:
            bar.state = "stopped"
            bar.end = parse_ts(finished_at) if finished_at else bar.start
    names = sorted({b.lane for b in bars} - set(LANES)) + list(LANES)  # prepare first
    lanes = [_lane(name, [b for b in bars if b.lane == name], terminal) for name in names]
    lanes = [ln for ln in lanes if ln.name in LANES or ln.bars]
    start = min((b.start for b in bars), default=None)
    ends = [b.end for b in bars if b.end is not None]
    running = any(b.end is None for b in bars)
    end = now if running or not ends else max(ends)
    return Timeline(lanes, start, end, failed_step, failed_message)


def _collateral(event: StoredEvent) -> bool:
    return str(event.payload.get("error", "")).strip().lower() == "cancelled"


def _lane(name: str, bars: list[Bar], terminal: bool) -> Lane:
    lane = Lane(name, bars=bars)
    if not bars:
        lane.state = "notrun" if terminal else "pending"
        return lane
    lane.start = min(b.start for b in bars)
    states = {b.state for b in bars}
    last = LAST.get(name)
    finished = any(b.step == last and b.state in ("done", "skipped") for b in bars) or (
        last is None and "running" not in states
    )
    if "failed" in states:
        lane.state = "failed"
    elif "running" in states:
        lane.state = "running"
    elif finished or (states == {"skipped"}):
        lane.state = "skipped" if states == {"skipped"} else "done"
    else:
        lane.state = "stopped" if terminal else "running"
    if lane.state != "running":
        lane.end = max(b.end or b.start for b in bars)
    return lane
