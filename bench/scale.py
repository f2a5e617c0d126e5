"""Benchmark: many deploys at once on one dispatcher machine — throughput, latency, what each
costs, SSE fan-out, ingest and the queue, measured in one run (issue 15).

One run starts what it needs: a throwaway PostgreSQL cluster (the sandbox's Supabase databases
and the PostgreSQL store), a sandbox with the **realistic** profile time-scaled by --scale
(Supabase 90 s to ACTIVE_HEALTHY, Vercel queue 5 s + build 120 s, promotion 2 s; the Supabase
rate limit lifted: the sandbox would otherwise refuse 20 deploys' polls), and the dispatcher in
a process of its own (bench/scale_host.py: SQLite store, the process launcher, the API on
loopback, FORGE_MAX_CONCURRENT=25), so its RSS, threads and fds are its own. Then:

1. N = 1, 2, 5, 10, 20 concurrent deploys of distinct apps (examples/hello-app, distinct
   project ids and names), each submitted with a signed POST and followed over the API to its
   end: deploys/min, p50/p95 submit -> live (the `live` status event read by the client), and
   p50(N)/p50(1). N = 1 runs --repeat-one times in a row.
2. The dispatcher's RSS, threads and fds: idle, and the peak of each round against N (the
   least-squares slope: the cost per running deploy); each runner's peak RSS and CPU seconds
   (its whole process tree: python, git, gh, supabase, node) from /proc (bench/scale_probe.py).
3. SSE fan-out: --watchers watchers (bench/scale_watchers.py, one process, one connection each)
   on one deploy while 20 more run: every watcher must get every stored event exactly once, in
   order; the delay from the dispatcher publishing a stored event to each watcher reading it
   (p50/p99, events published after every watcher was connected).
4. Ingest, 10k runner lines, through the public Store API (bench/scale_store.py) on SQLite and
   PostgreSQL: `Store.append_events` in batches of 200, and the whole `Ingestor`.
5. The queue: 1,000 queued deploys claimed one by one on SQLite and PostgreSQL; claim latency
   per tenth of the queue.

Between rounds the dispatcher's store calls are counted per method (who polls the store).
Prints a table, writes bench/results/scale-<UTC time>.json and a chart (.png) of p50
submit -> live against N.

    .venv/bin/python bench/scale.py [--scale 0.1] [--watchers 500] [--ns 1,2,5,10,20]

Targets (issue 15): p50(10)/p50(1) <= 1.10; fan-out nothing lost or doubled; PostgreSQL
ingest >= 50k events/s, SQLite >= 50k. The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import sandbox_admin, sandbox_env, start_sandbox
from scale_deploys import Host, fanout, round_of
from scale_report import print_report, write_results
from scale_store import claim_part, ingest_part

from dispatcher.store.open import open_store
from sandbox.postgres import ManagedCluster, free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hello-app"


def start_sandbox_live(
    state: Path, scale: float, postgres_url: str
) -> tuple[subprocess.Popen[bytes], Callable[[float], None]]:
    """The sandbox (Supabase's rate limit lifted), and a function that changes its time scale
    live."""
    process, info = start_sandbox(state, scale, postgres_url, lift_rate_limit=True)
    return process, lambda value: sandbox_admin(info, "time-scale", {"scale": value})


def host_env(root: Path, sandbox: dict[str, str], secret: str, launcher: str) -> dict[str, str]:
    state = root / f"dispatcher-{launcher}"
    return {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("GH_", "SUPABASE_", "VERCEL_", "FORGE_"))},
        **sandbox,
        "PATH": os.pathsep.join([str(REPO / "node_modules" / ".bin"), os.environ["PATH"]]),
        "PYTHONPATH": str(REPO),
        "FORGE_HOOK_SECRET": secret,
        "FORGE_BUILDS_ROOT": str(root / "builds"),
        "FORGE_LAUNCHER": launcher,
        "FORGE_DOCKER_NETWORK": "host",
        "FORGE_RUNNER_IMAGE": "forge-runner:dev",
        "FORGE_STATE_DIR": str(state),
        "FORGE_DATABASE_URL": f"sqlite:///{state / 'dispatcher.db'}",
        "FORGE_MAX_CONCURRENT": "25",
        # As bench/pipeline.py: the runner polls providers every 0.5 s.
        "FORGE_POLL_INTERVAL_S": "0.5",
        "FORGE_DEADLINE_S": "1800",
    }  # fmt: skip


def load() -> float:
    return round(os.getloadavg()[0], 2)


def deploy_parts(
    args: argparse.Namespace,
    root: Path,
    sandbox: dict[str, str],
    sandbox_pid: int,
    set_scale: Callable[[float], None],
) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    env = host_env(root, sandbox, secret, args.launcher)
    builds = root / "builds"
    builds.mkdir(exist_ok=True)
    with Host(env, root / "probe.json", secret, {"sandbox": sandbox_pid}) as host:
        time.sleep(2.0)
        idle = host.sampler.host[-1]
        report: dict[str, Any] = {
            "idle": {"rss_mb": idle.rss_mb, "threads": idle.threads, "fds": idle.fds},
            "rounds": [],
        }
        tag = uuid.uuid4().hex[:6]
        for n in args.ns:
            repeats = args.repeat_one if n == 1 else 1
            for r in range(repeats):
                report["rounds"].append(
                    round_of(host, builds, EXAMPLE, n, f"s{tag}-{n}-{r}", load(), args.pyspy)
                )
                print(f"N={n}: {report['rounds'][-1]['summary']}", file=sys.stderr, flush=True)
        report["fanout"] = [
            fanout(host, builds, EXAMPLE, args.watchers, others, f"f{tag}-{others}", load(),
                   args.scale, set_scale, pyspy=args.pyspy if others else None)
            for others in sorted({0, args.fanout_deploys})
            if args.watchers
        ]  # fmt: skip
        report["runners"] = host.runner_costs()
    return report


def storage_parts(root: Path, base_url: str, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, url in (
        ("sqlite", f"sqlite:///{root / 'store-bench.db'}"),
        ("postgresql", f"{base_url}/store_bench"),
    ):
        store = open_store(url)
        try:
            store.migrate()
            out[name] = {
                "load": load(),
                **ingest_part(store, 10_000, 3 if quick else 5),
                "claim": claim_part(store, 1_000),
            }
        finally:
            store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="sandbox time scale")
    parser.add_argument("--ns", default="1,2,5,10,20", help="concurrent deploys per round")
    parser.add_argument("--repeat-one", type=int, default=3, help="rounds of N=1")
    parser.add_argument("--watchers", type=int, default=500, help="0: no fan-out part")
    parser.add_argument("--fanout-deploys", type=int, default=20)
    parser.add_argument("--launcher", default="process", choices=("process", "docker"))
    parser.add_argument("--pyspy", type=Path, default=None, help="py-spy binary: profile N=10")
    parser.add_argument("--skip-deploys", action="store_true", help="storage parts only")
    parser.add_argument("--quick", action="store_true", help="fewer ingest rounds")
    args = parser.parse_args()
    args.ns = [int(x) for x in args.ns.split(",")]
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report: dict[str, Any] = {
        "command": " ".join(["bench/scale.py", *sys.argv[1:]]),
        "started": started,
        "cpus": os.cpu_count(),
        "load_at_start": list(os.getloadavg()),
        "scale": args.scale,
        "launcher": args.launcher,
    }
    root = Path(tempfile.mkdtemp(prefix="forge-bench-scale-", dir="/var/tmp"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` and must enter
    cluster = ManagedCluster(root / "pg", "127.0.0.1", free_port("127.0.0.1"))
    sandbox: subprocess.Popen[bytes] | None = None
    try:
        server = cluster.start()
        password = secrets.token_hex(12)
        with server.admin() as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
            conn.execute("CREATE DATABASE store_bench")
        base = f"postgresql://postgres:{password}@127.0.0.1:{server.port}"
        if not args.skip_deploys:
            state = root / "sandbox"
            sandbox, set_scale = start_sandbox_live(state, args.scale, f"{base}/postgres")
            report["deploys"] = deploy_parts(args, root, sandbox_env(state), sandbox.pid, set_scale)
        report["storage"] = storage_parts(root, base, args.quick)
        print_report(report)
        write_results(report, REPO / "bench" / "results", started)
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=60)
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"thread {a.thread}: {a.exc_value!r}", file=sys.stderr)
    main()
