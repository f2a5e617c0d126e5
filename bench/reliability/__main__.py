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

from bench.reliability import suite
from bench.reliability.table import Row, render, write
from bench.reliability.world import REPO, world

DEFAULT_OUT = REPO / "bench" / "results" / "reliability.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__)
    parser.add_argument("--sample", type=int, default=0, help="N cases per kind (0: all)")
    parser.add_argument("--seed", type=int, default=None, help="the sample's seed (printed)")
    parser.add_argument("--only", default="", help="comma-separated kind prefixes to run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the sandbox and the PostgreSQL cluster are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    mode = f"--sample {args.sample} --seed {seed}" if args.sample else "full"
    print(f"reliability: {mode}", flush=True)
    started = time.monotonic()
    rows = run(args.sample, seed, only, progress=lambda line: print(line, flush=True))
    print()
    print(render(rows))
    meta: dict[str, Any] = {
        "mode": mode,
        "seed": seed,
        "sample": args.sample,
        "seconds": round(time.monotonic() - started, 1),
    }
    write(args.out, rows, meta)
    print(f"\nwritten to {args.out}; seed {seed}")
    return 0 if all(v.passed for row in rows for v in row.verdicts) else 1


def run(sample: int, seed: int, only: list[str], progress: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    with world() as w:
        for derived in suite.derive(w, only):
            kind, cases = derived.name, derived.cases
            chosen = cases
            if derived.sampled and sample and len(cases) > sample:
                pick = random.Random(f"{seed}:{kind}")  # noqa: S311 (a sample, not a secret)
                chosen = pick.sample(cases, sample)
            row = Row(kind, len(cases))
            for case in chosen:
                t = time.monotonic()
                verdict = derived.run(case)
                verdict.seconds = verdict.seconds or round(time.monotonic() - t, 2)
                row.verdicts.append(verdict)
                mark = "ok  " if verdict.passed else "FAIL"
                progress(f"{mark} {kind}: {verdict.case} ({verdict.seconds} s)")
                for problem in verdict.problems():
                    progress(f"     {problem[:2000]}")
            rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
