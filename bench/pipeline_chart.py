"""The chart of `bench/pipeline.py --chart FILE`: the sequential and the overlapped run, each
sub-step a bar in its provider's lane on one seconds axis (the page's timeline,
`dispatcher.ui.timeline`, from the runner's own events), and the critical path as one bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from dispatcher.model import StoredEvent
from dispatcher.ui.timeline import TITLES, Timeline, build_from

COLORS = {"prepare": "#6b7280", "github": "#111827", "supabase": "#16a34a",
          "vercel": "#2563eb", "health": "#d97706"}  # fmt: skip


def timeline_of(stdout: str) -> Timeline:
    """The timeline of one `forge-runner deploy`'s event stream (its stdout)."""
    events = []
    for i, line in enumerate(stdout.splitlines()):
        raw: dict[str, Any] = json.loads(line)
        events.append(StoredEvent("bench", i + 1, 1, raw["type"], raw["ts"], raw["payload"]))
    return build_from(events, True, None, 0.0)


def draw(runs: dict[str, Timeline], walls: dict[str, float], critical_s: float, path: Path) -> None:
    rows: list[str] = []
    fig, ax = plt.subplots(figsize=(11, 6), dpi=120)
    for run, tl in runs.items():
        origin = tl.start or 0.0
        for lane in tl.lanes:
            y = -len(rows)
            rows.append(f"{run} · {TITLES.get(lane.name, lane.name)}")
            for bar in lane.bars:
                end = bar.end if bar.end is not None else tl.end
                ax.barh(y, max(end - bar.start, 0.05), left=bar.start - origin, height=0.7,
                        color=COLORS.get(lane.name, "#9ca3af"), edgecolor="white")  # fmt: skip
        ax.text(walls[run], -len(rows) + 1, f"  {run}: {walls[run]:.1f} s wall", va="center",
                fontsize=9, fontweight="bold")  # fmt: skip
    y = -len(rows)
    rows.append("critical path")
    ax.barh(y, critical_s, height=0.7, color="white", edgecolor="#dc2626", hatch="//")
    ax.text(critical_s, y, f"  {critical_s:.1f} s (from the sandbox's delays)", va="center",
            fontsize=9, color="#dc2626", fontweight="bold")  # fmt: skip
    ax.set_yticks([-i for i in range(len(rows))], rows, fontsize=8)
    ax.set_xlabel("seconds since the run's first step")
    ax.set_title("forge-runner deploy: steps in sequence vs overlapped vs the critical path")
    ax.grid(axis="x", color="#e5e7eb")
    ax.set_axisbelow(True)
    ax.set_xlim(0, max([*walls.values(), critical_s]) * 1.3)
    ax.legend(handles=[Patch(color=c, label=TITLES.get(n, n)) for n, c in COLORS.items()],
              loc="lower right", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
