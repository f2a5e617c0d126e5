"""Start-to-first-event latency of the runner container.

For each run: create the container from `dispatcher.launchers.docker.spec`'s hardened spec
(secrets file mounted, tmpfs, limits, `--network none`), attach to its stdout, start it, and
time until the first complete stdout line (the runner's first event). The runner is given a
deliberately bad app name, so it reads its settings (the secrets file included), emits `result`
and `eof`, and exits 2 without any request. A bare container (`/bin/echo` as the entrypoint,
same spec) is measured the same way, for the engine's own share.

    .venv/bin/python bench/container_start.py [--image forge-runner:dev] [--runs 10]

Needs a Docker engine (scripts/docker-engine) and the image (`make image`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker

from dispatcher.launchers.docker.files import remove_secrets_file, write_secrets_file
from dispatcher.launchers.docker.spec import runner_container_spec

TOKENS = {
    "GH_TOKEN": "ghp_bench0000000000000000000000000",
    "SUPABASE_ACCESS_TOKEN": "sbp_bench00000000000000000000000000",
    "VERCEL_TOKEN": "bench000000000000000000000",
}
CONFIG = {"GH_ORG": "forge-apps", "SUPABASE_ORG_ID": "forge-org", "VERCEL_ORG_ID": "team_forge"}
COMMAND = ["deploy", "--build-dir", "/build", "--name", "bad;name"]


def first_line_latency(
    client: Any, image: str, build: Path, entrypoint: list[str] | None, command: list[str]
) -> dict[str, float]:
    deploy_id = f"bench-{uuid.uuid4().hex[:10]}"
    secrets = write_secrets_file(TOKENS, deploy_id, 1)
    spec = runner_container_spec(
        image, deploy_id, 1, build, secrets, command, env=CONFIG, network="none"
    )
    if entrypoint is not None:
        spec["entrypoint"] = entrypoint
    box = None
    try:
        t0 = time.perf_counter()
        box = client.containers.create(**spec)
        t_created = time.perf_counter()
        stream = box.attach(stdout=True, stderr=False, stream=True, logs=True)
        box.start()
        t_started = time.perf_counter()
        buffer = b""
        for chunk in stream:
            buffer += chunk
            if b"\n" in buffer:
                break
        t_first = time.perf_counter()
        if b"\n" not in buffer:
            raise RuntimeError(f"no stdout line from {entrypoint or image}: {buffer!r}")
        return {
            "create_s": t_created - t0,
            "start_s": t_started - t_created,
            "first_line_s": t_first - t0,
        }
    finally:
        if box is not None:
            box.remove(force=True)
        remove_secrets_file(deploy_id, 1)


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    firsts = [s["first_line_s"] for s in samples]
    return {
        "median_s": round(statistics.median(firsts), 3),
        "min_s": round(min(firsts), 3),
        "max_s": round(max(firsts), 3),
        "median_create_s": round(statistics.median(s["create_s"] for s in samples), 3),
        "median_start_s": round(statistics.median(s["start_s"] for s in samples), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="forge-runner:dev")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)

    client = docker.from_env(version="auto")
    client.images.get(args.image)  # fails here, naming the image, when `make image` was not run
    with tempfile.TemporaryDirectory(prefix="forge-bench-") as tmp:
        build = Path(tmp) / "build"
        build.mkdir()
        (build / "package.json").write_text('{"name": "bench"}\n')
        cases = {
            "runner (forge-runner deploy, bad name -> first event)": (None, COMMAND),
            "bare (/bin/echo, same spec)": (["/bin/echo"], ["{}"]),
        }
        # One warm-up run of each: the first start after a build pays for page-cache misses.
        for entrypoint, command in cases.values():
            first_line_latency(client, args.image, build, entrypoint, command)
        results = {}
        for label, (entrypoint, command) in cases.items():
            samples = [
                first_line_latency(client, args.image, build, entrypoint, command)
                for _ in range(args.runs)
            ]
            results[label] = summary(samples)
            print(
                f"{label}: median {results[label]['median_s']:.3f} s "
                f"(min {results[label]['min_s']:.3f}, max {results[label]['max_s']:.3f}; "
                f"create {results[label]['median_create_s']:.3f}, "
                f"start {results[label]['median_start_s']:.3f}) over {args.runs} runs"
            )
    print(json.dumps({"runs": args.runs, "image": args.image, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
