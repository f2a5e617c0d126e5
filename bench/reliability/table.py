"""The figures: one row per kind of case, the verdict of each case, the table and its JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ("lost", "duplicated", "stuck", "leaked")


@dataclass
class Verdict:
    """One case's outcome. `lost`: the deploy did not end as it must (wrong outcome, a resource
    missing, migrations not applied exactly once); `duplicated`: a second resource or event;
    `stuck`: no end within the bound (killed), or no `eof`; `leaked`: a secret in an output,
    traffic beyond loopback, or a resource a teardown had to remove; `other`: the case could not
    prove anything (the fault was never hit) — never a pass. `figures`: what a case measured
    (the load kinds: answer codes, deploys a minute, RSS and fd slopes), printed and in the
    JSON."""

    case: str
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.leaked or self.other)

    def problems(self) -> list[str]:
        return [f"{k}: {m}" for k in (*COLUMNS, "other") for m in getattr(self, k)]


@dataclass
class Row:
    kind: str
    cases: int  # derived for this kind (the full matrix)
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0  # the kind's wall time, when it ran alone in a child (`--jobs`)

    def figures(self) -> dict[str, int]:
        out = {"tried": len(self.verdicts), "passed": sum(v.passed for v in self.verdicts)}
        for column in COLUMNS:
            out[column] = sum(bool(getattr(v, column)) for v in self.verdicts)
        return out


def render(rows: list[Row]) -> str:
    header = ("kind", "cases", "tried", "passed", *COLUMNS)
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        f = row.figures()
        lines.append((row.kind, str(row.cases), *(str(f[k]) for k in header[2:])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def document(rows: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "rows": [
            {
                "kind": row.kind,
                "cases": row.cases,
                "seconds": row.seconds,
                **row.figures(),
                "failures": [
                    {"case": v.case, "problems": v.problems()} for v in row.verdicts if not v.passed
                ],
                "verdicts": [asdict(v) | {"passed": v.passed} for v in row.verdicts],
            }
            for row in rows
        ],
    }


def write(path: Path, rows: list[Row], meta: dict[str, Any], merge: bool = False) -> None:
    """The figures as JSON; with `merge`, rows of other kinds already in `path` are kept (a run
    of some kinds, `--only`, completes an earlier run's table)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = document(rows, meta)
    if merge and path.exists():
        ours = {row.kind for row in rows}
        kept = [r for r in json.loads(path.read_text())["rows"] if r["kind"] not in ours]
        doc["rows"] = kept + doc["rows"]
        doc["merged"] = True
    path.write_text(json.dumps(doc, indent=2) + "\n")
