"""Benchmark: the overlapped pipeline against the same steps in a line, and the critical path.

One run, one sandbox with the realistic profile (Supabase provisioning 90 s, keys after 2 s,
Vercel queue 5 s + build 120 s, promotion 2 s), time-scaled by --scale. Prints the wall time of
`forge-runner deploy`, of `forge-runner deploy --sequential` (GitHub → Supabase → Vercel), and
the critical path computed from the sandbox's delays, with the two ratios.

    .venv/bin/python bench/pipeline.py [--scale 0.5] [--chart FILE]

`--chart FILE` also draws the two runs' steps and the critical path as one PNG
(`bench/pipeline_chart.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from sandbox.clock import REALISTIC_DELAYS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-app"


def critical_path(scale: float) -> dict[str, float]:
    d = REALISTIC_DELAYS
    database = d["supabase.provision"]  # create -> ACTIVE_HEALTHY, then migrations (~0)
    build = d["supabase.api_keys"] + d["vercel.queue"] + d["vercel.build"]
    overlapped = max(database, build) + d["vercel.promote"]
    sequential = database + build - d["supabase.api_keys"] + d["vercel.promote"]
    return {"critical": overlapped * scale, "sequential_floor": sequential * scale}


def start_sandbox(
    state: Path, scale: float, postgres_url: str | None = None, *, lift_rate_limit: bool = False
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`forge-sandbox serve` at time scale `scale` and its announcement (admin URL, token, CA).
    `postgres_url` (it may carry a password) goes through the environment, never argv;
    `lift_rate_limit` lifts Supabase's 120-a-minute budget (for benches that deploy many)."""
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)  # a sandbox-run PostgreSQL runs as `postgres` and must enter
    env = dict(os.environ)
    if postgres_url:
        env["FORGE_SANDBOX_POSTGRES_URL"] = postgres_url
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve", "--state-dir", str(state),
         "--time-scale", str(scale)],
        stdout=subprocess.PIPE,
        stderr=(state.parent / "sandbox.stderr").open("wb"),
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"sandbox did not start; see {state.parent / 'sandbox.stderr'}")
    info: dict[str, Any] = json.loads(line)
    if lift_rate_limit:
        sandbox_admin(info, "supabase/rate-limit", {"limit": 1_000_000})
    return process, info


def sandbox_admin(info: dict[str, Any], path: str, body: dict[str, Any]) -> None:
    """PUT one admin setting of a running sandbox."""
    requests.put(
        f"{info['admin']['url']}/{path}",
        json=body,
        headers={"Authorization": f"Bearer {info['admin']['token']}"},
        verify=info["ca_file"],
        timeout=30,
    ).raise_for_status()


def sandbox_env(state: Path) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", "env", "--state-dir", str(state)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def timed_deploy(env: dict[str, str], build: Path, name: str, *extra: str) -> tuple[float, str]:
    """(wall seconds, the runner's event stream)."""
    full = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")},
        **env,
        "PATH": os.pathsep.join([str(REPO / "node_modules" / ".bin"), os.environ["PATH"]]),
        # Polling faster than 0.5 s would spend Supabase's 120 requests/min budget (sandbox too).
        "FORGE_POLL_INTERVAL_S": "0.5",
    }
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "runner.cli", "deploy", "--build-dir", str(build), "--name", name,
         *extra],
        env=full, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    last = json.loads(result.stdout.splitlines()[-1])
    if result.returncode != 0 or last["payload"]["outcome"] != "live":
        raise SystemExit(f"{name} did not end live:\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.5, help="sandbox time scale")
    parser.add_argument("--chart", type=Path, default=None, help="also draw a PNG here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forge-bench-", dir="/var/tmp"))
    root.chmod(0o755)  # the sandbox's PostgreSQL runs as `postgres` and must enter
    state = root / "sandbox"
    sandbox, _ = start_sandbox(state, args.scale)
    try:
        env = sandbox_env(state)
        build = root / "app"
        shutil.copytree(EXAMPLE, build)
        tag = uuid.uuid4().hex[:6]
        overlapped, overlapped_events = timed_deploy(env, build, f"bench-graph-{tag}")
        sequential, sequential_events = timed_deploy(
            env, build, f"bench-line-{tag}", "--sequential"
        )
        paths = critical_path(args.scale)
        report = {
            "scale": args.scale,
            "overlapped_s": round(overlapped, 2),
            "sequential_s": round(sequential, 2),
            "critical_path_s": round(paths["critical"], 2),
            "overlapped_over_critical": round(overlapped / paths["critical"], 3),
            "sequential_over_overlapped": round(sequential / overlapped, 3),
            "ceiling_sequential_over_critical": round(
                paths["sequential_floor"] / paths["critical"], 3
            ),
        }
        print(f"time scale                       {args.scale}")
        print(f"overlapped pipeline              {overlapped:8.2f} s")
        print(f"same steps in sequence           {sequential:8.2f} s")
        print(f"critical path (sandbox delays)   {paths['critical']:8.2f} s")
        for label, key, target in (
            ("overlapped / critical path", "overlapped_over_critical", "(target <= 1.05)"),
            ("sequential / overlapped", "sequential_over_overlapped", "(target >= 1.7)"),
            ("ceiling (delays only)", "ceiling_sequential_over_critical", ""),
        ):
            print(f"{label:<32} {report[key]:8.3f}  {target}")
        print(json.dumps(report))
        if args.chart is not None:
            sys.path.insert(0, str(Path(__file__).parent))
            import pipeline_chart

            pipeline_chart.draw(
                {
                    "sequential": pipeline_chart.timeline_of(sequential_events),
                    "overlapped": pipeline_chart.timeline_of(overlapped_events),
                },
                {"sequential": sequential, "overlapped": overlapped},
                paths["critical"],
                args.chart,
            )
            print(f"wrote {args.chart}")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
