"""Terminal output as the pages show it: a log line's text read the way a terminal would, for a
subset of what CLIs write.

- SGR colours and weight (`ESC[...m`): reset, bold, the 16 and the 256 colours, foreground and
  background. Each run of text gets classes (`ab` bold, `af<n>` / `ag<n>` colour n as foreground
  / background) that `css()` defines; any other SGR attribute (italic, 24-bit colour, ...) is
  dropped.
- The line rewritten in place: after a carriage return the next text replaces the row, and
  `ESC[2K` (or `ESC[1K`, or `ESC[K` at the row's start) erases it. A text that begins by
  returning or erasing (`\\r`, `ESC[2K\\r`, a progress bar's next frame) rewrites the line shown
  before it: `Shown.rewrites`.
- Every other escape (cursor moves, OSC titles and links, charset switches) and control
  character is removed; newlines and tabs stay.

The text a person reads is `Shown.text`: the download (`views.log_text`) is made of it, so it
says what the page says. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One escape sequence or control character: CSI (params, final byte), OSC (to BEL or ST), a
# two-byte escape, a C0 / C1 control. Newline and tab are text.
_TOKEN = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # any escape or control but \n \t
# The 16 colours, for a dark background (the log's and the failure box's output panels).
BASE16 = (
    "#6e7681", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#b1bac4",
    "#8b949e", "#ffa198", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#f0f6fc",
)  # fmt: skip
_CUBE = (0, 95, 135, 175, 215, 255)


def colour(n: int) -> str:
    """xterm's colour n (0-255) as CSS."""
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        r, g, b = _CUBE[n // 36], _CUBE[n // 6 % 6], _CUBE[n % 6]
        return f"#{r:02x}{g:02x}{b:02x}"
    level = 8 + 10 * (n - 232)
    return f"#{level:02x}{level:02x}{level:02x}"


def css() -> str:
    """The classes `Style.classes` names (served as /ui/static/ansi.css)."""
    rules = [".ab{font-weight:700}"]
    rules += [f".af{n}{{color:{colour(n)}}}" for n in range(256)]
    rules += [f".ag{n}{{background:{colour(n)}}}" for n in range(256)]
    return "\n".join(rules) + "\n"


@dataclass(frozen=True)
class Style:
    bold: bool = False
    fg: int | None = None
    bg: int | None = None

    @property
    def classes(self) -> str:
        names = ["ab"] if self.bold else []
        if self.fg is not None:
            names.append(f"af{self.fg}")
        if self.bg is not None:
            names.append(f"ag{self.bg}")
        return " ".join(names)


PLAIN = Style()


def sgr(style: Style, params: str) -> Style:
    """`style` after the SGR sequence with `params` (`"1;31"`, `"38;5;208"`, `""`)."""
    codes = [int(p) if p.isdigit() else 0 for p in re.split("[;:]", params)] if params else [0]
    bold, fg, bg = style.bold, style.fg, style.bg
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            bold, fg, bg = False, None, None
        elif code == 1:
            bold = True
        elif code == 22:
            bold = False
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fg = code - 30 if code < 90 else code - 82
        elif 40 <= code <= 47 or 100 <= code <= 107:
            bg = code - 40 if code < 100 else code - 92
        elif code == 39:
            fg = None
        elif code == 49:
            bg = None
        elif code in (38, 48) and i + 1 < len(codes):
            mode = codes[i + 1]
            if mode == 5 and i + 2 < len(codes):  # 256 colours
                if codes[i + 2] <= 255:
                    fg, bg = (codes[i + 2], bg) if code == 38 else (fg, codes[i + 2])
                i += 2
            elif mode == 2:  # 24-bit: not in the subset, its three values skipped
                i += 4
            else:
                i += 1
        i += 1
    return Style(bold, fg, bg)


Segment = tuple[str, str]  # (text, classes)


@dataclass(frozen=True)
class Shown:
    segments: tuple[Segment, ...]
    rewrites: bool  # it replaces the line shown before it

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.segments)


class _Row:
    """The rows of a text as a terminal leaves them: finished rows, then the current one."""

    def __init__(self) -> None:
        self.done: list[Segment] = []
        self.row: list[Segment] = []
        self.returned = False  # a carriage return: the next text replaces the row

    def put(self, text: str, style: Style) -> None:
        for i, piece in enumerate(text.split("\n")):
            if i:
                self.row.append(("\n", ""))
                self.done += self.row
                self.row, self.returned = [], False
            if piece:
                if self.returned:
                    self.row, self.returned = [], False
                self.row.append((piece, style.classes))

    def erase(self) -> None:
        self.row = []

    def segments(self) -> tuple[Segment, ...]:
        merged: list[Segment] = []
        for text, classes in self.done + self.row:
            if merged and merged[-1][1] == classes:
                merged[-1] = (merged[-1][0] + text, classes)
            else:
                merged.append((text, classes))
        return tuple(merged)


def show(text: str) -> Shown:
    """`text` as the page shows it."""
    if not _CONTROL.search(text):
        return Shown(((text, ""),) if text else (), False)
    rows, style = _Row(), PLAIN
    rewrites = None  # decided by what comes first: a return or an erase, or text
    at = 0
    for found in _TOKEN.finditer(text):
        if found.start() > at:
            rows.put(text[at : found.start()], style)
            rewrites = False if rewrites is None else rewrites
        at = found.end()
        if found[0] == "\r":
            rows.returned = True
            rewrites = True if rewrites is None else rewrites
        elif found[2] == "m":
            style = sgr(style, found[1] or "")
        elif found[2] == "K" and (found[1] in ("1", "2") or rows.returned or not rows.row):
            rows.erase()
            rewrites = True if rewrites is None else rewrites
    if at < len(text):
        rows.put(text[at:], style)
    return Shown(rows.segments(), bool(rewrites))


def strip(text: str) -> str:
    """The text alone, as `show` leaves it."""
    return show(text).text
