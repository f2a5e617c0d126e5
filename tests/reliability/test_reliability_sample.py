"""CI's bounded run of the reliability suite (`make reliability` runs all of it): a seeded
sample of every sampled kind (fault matrix, crash points, dispatcher chaos, hostile runner
input) plus the one-pass kinds whole (hostile API requests, the secret scan) and the load
kinds at their sample size (a burst of 100 signed requests, a soak of 25 deploys). The seed is
printed and in every failure message; `FORGE_RELIABILITY_SEED` replays one. Every lost,
duplicated, stuck and leaked count must be 0, and every case tried must pass."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image.conftest import docker_client, runner_image  # noqa: F401 - fixtures
from tests.support.clis import REPO

PER_KIND = int(os.environ.get("FORGE_RELIABILITY_SAMPLE", "1"))

pytestmark = [pytest.mark.clis, pytest.mark.postgres, pytest.mark.docker]


def test_a_seeded_sample_of_every_kind_loses_duplicates_sticks_and_leaks_nothing(
    tmp_path: Path,
    runner_image: str,  # the secret scan deploys with it and greps its layers  # noqa: F811
) -> None:
    seed = int(os.environ.get("FORGE_RELIABILITY_SEED") or random.randrange(1 << 31))
    print(f"reliability sample seed: {seed} (replay: FORGE_RELIABILITY_SEED={seed})")
    out = tmp_path / "reliability.json"
    # two worlds at once, as `make reliability` runs: each kind in a child, the rows merged
    argv = ["--sample", str(PER_KIND), "--seed", str(seed), "--jobs", "2", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", "bench.reliability", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    where = f"seed {seed}; output tail:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    assert out.exists(), where
    figures = json.loads(out.read_text())
    assert figures["seed"] == seed and figures["done"] and figures["jobs"] == 2, where
    kinds = {row["kind"]: row for row in figures["rows"]}
    prefixes = {k.split(":")[0] for k in kinds}
    assert prefixes == {"fault", "crash", "chaos", "hostile", "secrets", "load"}, where
    chaos = {k for k in kinds if k.startswith("chaos")}
    assert chaos == {
        "chaos: dispatcher SIGKILL",
        "chaos: store PostgreSQL restart",
        "chaos: state dir full",
        "chaos: Docker engine restart",
    }, where
    for kind, row in kinds.items():
        assert row["tried"] >= 1, f"{kind}: nothing tried; {where}"
        zero = {c: row[c] for c in ("lost", "duplicated", "stuck", "leaked")}
        assert zero == dict.fromkeys(zero, 0), f"{kind}: {zero} {row['failures']}; {where}"
        assert row["passed"] == row["tried"], f"{kind}: {row['failures']}; {where}"
    assert run.returncode == 0, where
