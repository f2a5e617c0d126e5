"""Hostile input, generated: app names outside the grammar, build directories with one hostile
thing planted in each of their folders, hostile API requests (schemathesis' negative cases from
the served OpenAPI document, and bodies and build paths a client should never send). Each must
be refused with a clear error, with nothing created — not one provider request, not one row —
and never a 5xx."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability import runs
from bench.reliability.table import Verdict
from bench.reliability.world import EXAMPLE, World, unique_name

HUGE_BYTES = 101 * 1024 * 1024  # above GitHub's 100 MB per-file limit
BAD_CHARS = (
    [chr(c) for c in range(1, 32)] + list("`$&|;<>(){}[]*?!~#'\"\\ /.ABCZ") + ["é", "日", "\x7f"]
)


def hostile_names(seed: int, n: int = 40) -> list[str]:
    """Names no provider accepts: each holds a character outside `a-z 0-9 -`, or is too long."""
    rng = random.Random(seed)  # noqa: S311 (test data, not a secret)
    found: list[str] = []
    while len(found) < n:
        base = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.15:
            name = base + "a" * 41
        else:
            at = rng.randint(0, len(base))
            name = base[:at] + rng.choice(BAD_CHARS) + base[at:]
        if name not in found:
            found.append(name)
    return found


def _symlink_file(folder: Path) -> None:
    (folder / "passwd").symlink_to("/etc/passwd")


def _symlink_dir(folder: Path) -> None:
    (folder / "up").symlink_to("/")


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe")


def _control_char_name(folder: Path) -> None:
    (folder / "bell\x07\nname.txt").write_text("x")


def _huge_file(folder: Path) -> None:
    with (folder / "huge.bin").open("wb") as fh:
        fh.truncate(HUGE_BYTES)


def _binary_migration(folder: Path) -> None:
    (folder / "20250103000000_bin.sql").write_bytes(b"\x00\xff\xfe\x00select 1;")


def _latin1_migration(folder: Path) -> None:
    (folder / "20250103000000_latin.sql").write_bytes(b"select '\xe9';")


def _misnamed_migration(folder: Path) -> None:
    (folder / "add-table.sql").write_text("create table t(x int);")


ANYWHERE = {
    "symlink to a file outside": _symlink_file,
    "symlink to a folder outside": _symlink_dir,
    "fifo": _fifo,
    "control characters in a file name": _control_char_name,
    "huge file": _huge_file,
}
MIGRATIONS = {
    "binary migration": _binary_migration,
    "non-UTF-8 migration": _latin1_migration,
    "misnamed migration": _misnamed_migration,
}


@dataclass(frozen=True)
class RunnerCase:
    what: str  # "name" or a mutation
    value: str  # the name, or the folder the mutation goes in

    @property
    def id(self) -> str:
        if self.what == "name":
            return f"app name {json.dumps(self.value)}"
        return f"build dir: {self.what} in {self.value or '.'}/"


def runner_cases(seed: int) -> list[RunnerCase]:
    found = [RunnerCase("name", name) for name in hostile_names(seed)]
    folders = sorted(
        str(p.relative_to(EXAMPLE)) if p != EXAMPLE else ""
        for p in [EXAMPLE, *EXAMPLE.rglob("*")]
        if p.is_dir() and "node_modules" not in p.parts
    )
    for folder in folders:
        found += [RunnerCase(what, folder) for what in ANYWHERE]
        if folder.endswith("migrations"):
            found += [RunnerCase(what, folder) for what in MIGRATIONS]
    return found


def run_runner_case(w: World, case: RunnerCase) -> Verdict:
    verdict = Verdict(case.id)
    name = unique_name("bad")
    build = w.root / "hostile" / name
    if case.what == "name":
        build, name = EXAMPLE, case.value
    else:
        shutil.copytree(EXAMPLE, build, symlinks=True)
        {**ANYWHERE, **MIGRATIONS}[case.what](build / case.value)
    runner = w.runner(w.root / "work" / unique_name("bad"))
    before = _provider_calls(w)
    totals = _totals(w)
    result = runs.run(runner, ["deploy", "--build-dir", str(build), "--name", name])
    runs.check(verdict, result, w.secrets())
    error = str(result.result.get("error", ""))
    if result.returncode != 2 or result.outcome != "bad_input":
        verdict.lost.append(f"not refused: exit {result.returncode}, {result.outcome!r}, {error!r}")
    elif len(error) < 10:
        verdict.other.append(f"refused without a clear error: {error!r}")
    calls = _provider_calls(w) - before
    if calls:
        verdict.leaked.append(f"{calls} provider request(s) made for hostile input")
    if _totals(w) != totals:
        verdict.leaked.append(f"resources created: {totals} -> {_totals(w)}")
    if case.what != "name":
        shutil.rmtree(build, ignore_errors=True)
    return verdict


def _provider_calls(w: World) -> int:
    return sum(1 for e in w.sandbox.traffic() if not e["path"].startswith("/_admin"))


def _totals(w: World) -> tuple[int, ...]:
    res = w.sandbox.resources()
    return (
        len(res["github"]["repos"]),
        len(res["supabase"]["projects"]),
        len(res["vercel"]["projects"]),
        len(res["vercel"]["deployments"]),
    )


def deployments_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row: Any = conn.execute("SELECT count(*) FROM deployments").fetchone()
        return int(row[0])
