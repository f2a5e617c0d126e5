"""Benchmark: Vercel file uploads one at a time against `FORGE_VERCEL_UPLOADS` at once.

One run, one sandbox (realistic profile, time-scaled by --scale: a file's upload round trip is
0.1 s real-world): the example app plus --files small files, deployed twice with distinct
contents (the sandbox's file store is content-addressed and shared) — once with
FORGE_VERCEL_UPLOADS=1, once with --parallel. The upload phase is read from the runner's own
events (from "uploading N of M files" to "deployment ... created"); prints both and the ratio,
and writes JSON.

    .venv/bin/python bench/uploads.py [--files 500] [--parallel 8] [--scale 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from pipeline import EXAMPLE, REPO, sandbox_env, start_sandbox

from sandbox.clock import REALISTIC_DELAYS


def make_build(root: Path, tag: str, files: int) -> Path:
    build = root / f"app-{tag}"
    shutil.copytree(EXAMPLE, build)
    assets = build / "public" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (assets / f"part-{i:04}.txt").write_text(f"{tag} asset {i}\n" + "x" * 2000)
    return build


def upload_phase(env: dict[str, str], build: Path, name: str, uploads: int) -> dict[str, float]:
    full = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")},
        **env,
        "PATH": os.pathsep.join([str(REPO / "node_modules" / ".bin"), os.environ["PATH"]]),
        "FORGE_POLL_INTERVAL_S": "0.5",
        "FORGE_VERCEL_UPLOADS": str(uploads),
    }
    result = subprocess.run(
        [sys.executable, "-m", "runner.cli", "deploy", "--build-dir", str(build), "--name", name],
        env=full, capture_output=True, text=True, check=False,
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or events[-1]["payload"]["outcome"] != "live":
        raise SystemExit(f"{name} did not end live:\n{result.stderr[-3000:]}")

    def at(prefix: str) -> datetime:
        for e in events:
            message = str(e["payload"].get("message", ""))
            if e["type"] == "step_progress" and message.startswith(prefix):
                return datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        raise SystemExit(f"{name}: no progress event starting {prefix!r}")

    begun, created = at("uploading "), at("deployment ")
    return {"upload_s": (created - begun).total_seconds()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500, help="extra files in the build")
    parser.add_argument("--parallel", type=int, default=8, help="FORGE_VERCEL_UPLOADS")
    parser.add_argument("--scale", type=float, default=0.2, help="sandbox time scale")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "uploads.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forge-bench-", dir="/var/tmp"))
    root.chmod(0o755)  # the sandbox's PostgreSQL runs as `postgres` and must enter
    state = root / "sandbox"
    sandbox, _ = start_sandbox(state, args.scale)
    try:
        env = sandbox_env(state)
        tag = uuid.uuid4().hex[:6]
        one = upload_phase(env, make_build(root, f"s{tag}", args.files), f"up1-{tag}", 1)
        many = upload_phase(
            env, make_build(root, f"p{tag}", args.files), f"up{args.parallel}-{tag}", args.parallel
        )
        floor = REALISTIC_DELAYS["vercel.upload"] * args.scale
        report = {
            "files": args.files + sum(1 for p in EXAMPLE.rglob("*") if p.is_file()),
            "scale": args.scale,
            "upload_round_trip_s": floor,
            "one_at_a_time_s": round(one["upload_s"], 3),
            f"{args.parallel}_at_once_s": round(many["upload_s"], 3),
            "speedup": round(one["upload_s"] / many["upload_s"], 2),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"files uploaded                  {report['files']:8d}")
        print(f"upload round trip (scaled)      {floor * 1000:8.1f} ms")
        print(f"FORGE_VERCEL_UPLOADS=1          {one['upload_s']:8.2f} s")
        print(f"FORGE_VERCEL_UPLOADS={args.parallel:<10d} {many['upload_s']:8.2f} s")
        print(f"speedup                         {report['speedup']:8.2f} x")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
