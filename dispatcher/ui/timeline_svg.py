"""The timeline as inline SVG, for the page: one row per lane, the sub-step bars on a shared
seconds axis (`dispatcher.ui.timeline`).

Drawn at two widths (`WIDE` for a desktop, `NARROW` for a phone; the stylesheet shows one), so
the whole axis always fits the screen and the running or failed bar is always in view, its
labels at a readable size. A bar's state is told by more than its colour: running bars are
dashed, failed ones hatched, and each bar that did not finish well carries its state's icon
(`timeline.ICONS`) and a title.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from dispatcher.ui.timeline import FILL, ICONS, Timeline

ROW_H, TOP, AXIS_H = 34, 8, 26
MARKED = ("running", "failed", "stopped", "skipped")  # bars that carry their icon


@dataclass(frozen=True)
class Size:
    width: int  # viewBox units (≈ px at the size it is shown)
    label_w: int  # the lanes' titles
    max_ticks: int
    char_w: float  # a bar's label, at the stylesheet's font size: at most this per character


WIDE = Size(760, 100, 8, 7.5)  # 12 px
NARROW = Size(340, 92, 4, 8.2)  # 13 px


def ticks(span: float, most: int = 8) -> list[float]:
    """Round tick positions (seconds) for an axis of `span` seconds: at most `most` + 1."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= most:
            return [i * step for i in range(int(span / step) + 1)]
    return [0.0, span]


def label(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:g}s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f}s"


def svg(tl: Timeline, size: Size = WIDE) -> str:
    """The timeline at `size`."""
    height = TOP + ROW_H * len(tl.lanes) + AXIS_H
    plot_w = size.width - size.label_w - 24  # room for the last bar's icon
    span = max(tl.end - tl.start, 0.1) if tl.start is not None else 1.0
    hatch = f"hatch-{size.width}"

    def x(t: float) -> float:
        return size.label_w + (t - (tl.start or 0.0)) / span * plot_w

    out = [
        f'<svg class="timeline w{size.width}" viewBox="0 0 {size.width} {height}" role="img" '
        f'aria-label="Timeline of the steps" xmlns="http://www.w3.org/2000/svg">'
        f'<defs><pattern id="{hatch}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="3" height="6" fill="#ffffff" '
        f'fill-opacity="0.45"/></pattern></defs>'
    ]
    axis_y = TOP + ROW_H * len(tl.lanes)
    for t in ticks(span, size.max_ticks):
        tx = size.label_w + t / span * plot_w
        out.append(f'<line x1="{tx:.1f}" y1="{TOP}" x2="{tx:.1f}" y2="{axis_y}" class="grid"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis_y + 16}" class="tick">{label(t)}</text>')
    for row, lane in enumerate(tl.lanes):
        y = TOP + row * ROW_H
        out.append(
            f'<text x="4" y="{y + ROW_H / 2 + 4:.0f}" class="lane">{lane.icon} '
            f"{escape(lane.title)}</text>"
        )
        for bar in lane.bars:
            end = bar.end if bar.end is not None else tl.end
            x0 = x(bar.start)
            w = max(x(end) - x0, 8.0 if bar.state in MARKED else 3.0)
            name = bar.step.split(".", 1)[1] if "." in bar.step else bar.step
            dash = ' stroke-dasharray="4 2"' if bar.state == "running" else ""
            out.append(
                f'<g class="bar {bar.state}"><title>{escape(bar.step)}: '
                f"{ICONS[bar.state][1]}, {end - bar.start:.1f} s</title>"
                f'<rect x="{x0:.1f}" y="{y + 5}" width="{w:.1f}" height="{ROW_H - 10}" rx="3" '
                f'fill="{FILL[bar.state]}" stroke="#111827"{dash}/>'
            )
            if bar.state == "failed":
                out.append(
                    f'<rect x="{x0:.1f}" y="{y + 5}" width="{w:.1f}" height="{ROW_H - 10}" '
                    f'rx="3" fill="url(#{hatch})"/>'
                )
            if w > size.char_w * len(name) + 8:
                out.append(
                    f'<text x="{x0 + 4:.1f}" y="{y + ROW_H / 2 + 4:.0f}">{escape(name)}</text>'
                )
            if bar.state in MARKED:
                out.append(
                    f'<text x="{x0 + w + 2:.1f}" y="{y + ROW_H / 2 + 4:.0f}" class="mark">'
                    f"{ICONS[bar.state][0]}</text>"
                )
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)
