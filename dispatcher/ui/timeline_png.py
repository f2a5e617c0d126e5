"""The timeline as a PNG (`forge-dispatcher timeline ID --png FILE`): the page's lanes and
sub-step bars (`dispatcher.ui.timeline`), drawn by matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from dispatcher.ui.timeline import FILL, Timeline


def render(tl: Timeline, path: Path, title: str) -> None:
    lanes = tl.lanes
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(lanes) + 1.4), dpi=120)
    origin = tl.start or 0.0
    for row, lane in enumerate(lanes):
        y = len(lanes) - 1 - row
        for bar in lane.bars:
            end = bar.end if bar.end is not None else tl.end
            width = max(end - bar.start, (tl.end - origin) / 400)
            ax.barh(
                y, width, left=bar.start - origin, height=0.6, color=FILL[bar.state],
                edgecolor="#111827", linestyle="--" if bar.state == "running" else "-",
            )  # fmt: skip
            name = bar.step.split(".", 1)[-1]
            if width > (tl.end - origin) / 14:
                ax.text(bar.start - origin + width / 40, y, name, va="center", color="white",
                        fontsize=8, fontweight="bold")  # fmt: skip
    ax.set_yticks(range(len(lanes)), [f"{ln.title} ({ln.word})" for ln in reversed(lanes)])
    ax.set_xlabel("seconds since the first step")
    ax.set_title(title)
    ax.grid(axis="x", color="#e5e7eb")
    ax.set_axisbelow(True)
    used = sorted({b.state for ln in lanes for b in ln.bars})
    ax.legend(
        handles=[Patch(color=FILL[s], label=s) for s in used],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
