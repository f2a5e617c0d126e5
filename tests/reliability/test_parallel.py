"""`--jobs`: which kinds `--only` picks, and the order the children start in (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.reliability import parallel, suite
from bench.reliability.table import Row, Verdict, write


def test_only_picks_kinds_by_prefix_either_way() -> None:
    assert suite.wanted_prefixes(["fault"]) == [
        "fault: deploy",
        "fault: redeploy",
        "fault: revive",
        "fault: teardown",
    ]
    assert suite.wanted_prefixes(["load: soak 1000"]) == ["load: soak"]
    assert suite.wanted_prefixes(["chaos: state"]) == ["chaos: state dir full"]
    assert suite.wanted_prefixes([]) == list(suite.PREFIXES)
    assert suite.wanted_prefixes(["nothing"]) == []


def test_the_kinds_longest_last_time_start_first_and_unknown_ones_before_them(
    tmp_path: Path,
) -> None:
    last = tmp_path / "reliability.json"
    rows = [
        Row("fault: deploy", 2, [Verdict("a", seconds=3.0), Verdict("b", seconds=4.0)]),
        Row("load: soak 1000 deploys", 1, [Verdict("c")], seconds=2000.0),
        Row("crash: deploy", 1, [Verdict("d", seconds=1.0)]),
        Row("secrets: every output", 1, [Verdict("e")]),  # one pass: no seconds per case
    ]
    write(last, rows, {"done": True})
    kinds = ["fault: deploy", "crash: deploy", "secrets", "load: soak", "hostile: api"]
    assert parallel.longest_first(kinds, last) == [
        "secrets",
        "hostile: api",
        "load: soak",
        "fault: deploy",
        "crash: deploy",
    ]
    assert parallel.longest_first(kinds, tmp_path / "none.json") == kinds


def test_a_childs_rows_read_back_with_their_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "part.json"
    failed = Verdict("x", lost=["ended 'failed'"], seconds=1.5, figures={"n": 1})
    write(path, [Row("fault: deploy", 216, [Verdict("ok"), failed])], {"done": True})
    [row] = parallel.rows_of(path)
    assert (row.kind, row.cases) == ("fault: deploy", 216)
    assert row.figures() == {
        "tried": 2,
        "passed": 1,
        "lost": 1,
        "duplicated": 0,
        "stuck": 0,
        "leaked": 0,
    }
    assert row.verdicts[1] == failed
    assert json.loads(path.read_text())["rows"][0]["failures"][0]["case"] == "x"


def test_a_gap_in_the_stored_events_names_the_missing_seqs() -> None:
    from bench.reliability.chaos import judge_events

    def event(id_: int, seq: int | None, type_: str) -> dict[str, Any]:
        return {"id": id_, "attempt": 1, "seq": seq, "type": type_}

    events = [event(1, 1, "step_started"), event(2, 2, "log"), event(3, 4, "log")]
    events += [event(4, None, "status"), event(5, 5, "eof")]
    verdict = Verdict("gap")
    judge_events(verdict, events)
    assert verdict.lost == [
        "attempt 1: runner events missing: seqs [3] of 1..5 (stored around them: 1 step_started,"
        " 2 log, 4 log, 5 eof)"
    ]
