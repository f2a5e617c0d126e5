"""`make reliability`: derive every case, run them (or a seeded sample), print one table and
write it as JSON."""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.reliability import parallel, suite
from bench.reliability.table import Row, render, write
from bench.reliability.world import REPO, world

DEFAULT_OUT = REPO / "bench" / "results" / "reliability.json"


def stop_once(signum: int, _frame: object) -> None:
    """SIGTERM or Ctrl-C: unwind, so each world stops its sandbox and PostgreSQL cluster in its
    `finally`. Later signals are ignored: a Ctrl-C reaches the children beside the SIGTERM
    their parent sends them, and a second signal raised inside that `finally` would cut it
    short and leave the cluster running."""
    for which in (signal.SIGTERM, signal.SIGINT):
        signal.signal(which, signal.SIG_IGN)
    sys.exit(130 if signum == signal.SIGINT else 143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--sample", type=int, default=0, help="N cases per kind (0: all)")
    parser.add_argument("--seed", type=int, default=None, help="the sample's seed (printed)")
    parser.add_argument("--only", default="", help="comma-separated kind prefixes to run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--merge", action="store_true", help="keep other kinds' rows in --out")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worlds at once, a kind in each (1: round-robin)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, stop_once)
    signal.signal(signal.SIGINT, stop_once)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    if args.jobs < 1:
        parser.error(f"--jobs must be 1 or more, not {args.jobs}")
    mode = f"--sample {args.sample} --seed {seed}" if args.sample else "full"
    print(f"reliability: {mode}, {args.jobs} at once", flush=True)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "mode": mode,
        "seed": seed,
        "sample": args.sample,
        "jobs": args.jobs,
        "done": False,
    }

    def save(rows: list[Row], done: bool = False) -> None:
        meta.update(seconds=round(time.monotonic() - started, 1), done=done)
        write(args.out, rows, meta, merge=args.merge)

    def progress(line: str) -> None:
        print(line, flush=True)

    if args.jobs > 1:
        child = ["--seed", str(seed), "--sample", str(args.sample)]
        kinds = suite.wanted_prefixes(only)
        rows = parallel.run(kinds, args.jobs, child, args.out, save, progress)
    else:
        rows = run(args.sample, seed, only, save, progress)
    save(rows, done=True)
    print()
    print(render(rows))
    for row in rows:  # what the load kinds measured (the soak's samples: in the JSON only)
        for verdict in row.verdicts:
            if verdict.figures:
                shown = {k: v for k, v in verdict.figures.items() if k != "samples"}
                print(f"{row.kind}: {shown}")
    print(f"\nwritten to {args.out}; seed {seed}")
    return 0 if all(v.passed for row in rows for v in row.verdicts) else 1


def run(
    sample: int,
    seed: int,
    only: list[str],
    save: Callable[[list[Row]], None],
    progress: Callable[[str], None],
) -> list[Row]:
    """Every kind derived first; then their cases round-robin, each kind's in a seeded random
    order (all of them, or `sample`), the figures saved after each case: a run cut short is
    a uniform sample of every kind."""
    with world() as w:
        kinds = list(suite.derive(w, only, seed, sample))
        rows = [Row(k.name, len(k.cases)) for k in kinds]
        queues: list[list[Any]] = []
        for kind, row in zip(kinds, rows, strict=True):
            if not kind.sampled:  # one pass, done while deriving: its cases are verdicts
                row.verdicts = list(kind.cases)
                queues.append([])
                failed = [v for v in row.verdicts if not v.passed]
                progress(f"{kind.name}: {len(row.verdicts)} cases, {len(failed)} failed")
                for verdict in failed:
                    progress(f"FAIL {kind.name}: {verdict.case}: {verdict.problems()}")
                continue
            order = random.Random(f"{seed}:{kind.name}")  # noqa: S311 (a sample, not a secret)
            queues.append(order.sample(kind.cases, min(sample or len(kind.cases), len(kind.cases))))
        save(rows)
        while any(queues):
            for kind, row, queue in zip(kinds, rows, queues, strict=True):
                if not queue:
                    continue
                case = queue.pop(0)
                t = time.monotonic()
                verdict = kind.run(case)
                verdict.seconds = verdict.seconds or round(time.monotonic() - t, 2)
                row.verdicts.append(verdict)
                save(rows)
                mark = "ok  " if verdict.passed else "FAIL"
                progress(f"{mark} {kind.name}: {verdict.case} ({verdict.seconds} s)")
                for problem in verdict.problems():
                    progress(f"     {problem[:2000]}")
        return rows


if __name__ == "__main__":
    sys.exit(main())
