"""bench/scale.py, the deploy parts: the dispatcher process (`Host`), a round of N concurrent
deploys (`round_of`), and SSE fan-out to many watchers while deploys run (`fanout`)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from scale_probe import Sampler

from dispatcher.client import Client

BENCH = Path(__file__).resolve().parent


def pct(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Host:
    """bench/scale_host.py running, its client and its sampler."""

    def __init__(self, env: dict[str, str], probe: Path, secret: str) -> None:
        self.env = env
        self.probe = probe
        self.secret = secret
        self.state_dir = Path(env["FORGE_STATE_DIR"])
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Host:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "scale_host.py"), "--probe", str(self.probe)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=(self.state_dir / "host.stderr").open("wb"),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"dispatcher did not start: see {self.state_dir / 'host.stderr'}")
        info = json.loads(line)
        self.url, self.pid = info["url"], info["pid"]
        self.client = Client(self.url, self.secret.encode(), timeout_s=120)
        self.sampler = Sampler(self.pid, str(self.state_dir / "runs"))
        self.sampler.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sampler.stop()
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def calls(self) -> dict[str, list[float]]:
        try:
            calls: dict[str, list[float]] = json.loads(self.probe.read_text())["calls"]
        except (OSError, ValueError):
            return {}
        return calls

    def published(self) -> dict[tuple[str, int], float]:
        time.sleep(1.5)  # the probe file is written every second
        data = json.loads(self.probe.read_text())
        return {(dep, eid): t for dep, eid, t in data["published"]}

    def runner_costs(self) -> dict[str, Any]:
        costs = list(self.sampler.runners.values())
        rss = [c.peak_rss_mb for c in costs]
        cpu = [c.cpu_s for c in costs]
        return {
            "n": len(costs),
            "peak_rss_mb_p50": statistics.median(rss) if rss else math.nan,
            "peak_rss_mb_max": max(rss, default=math.nan),
            "cpu_s_p50": statistics.median(cpu) if cpu else math.nan,
            "cpu_s_mean": statistics.fmean(cpu) if cpu else math.nan,
            "processes_peak_max": max((c.processes_peak for c in costs), default=0),
        }


def calls_per_s(before: dict[str, list[float]], after: dict[str, list[float]], secs: float) -> Any:
    return {
        name: {
            "per_s": round((row[0] - before.get(name, [0, 0.0])[0]) / secs, 1),
            "busy_ms_per_s": round((row[1] - before.get(name, [0, 0.0])[1]) / secs * 1e3, 1),
        }
        for name, row in sorted(after.items())
        if row[0] != before.get(name, [0, 0.0])[0]
    }


def one_deploy(client: Client, build: Path, name: str, out: dict[str, Any]) -> None:
    """Submit, follow the JSON-lines stream to its end; note submit and the `live` event."""
    out["submitted"] = time.time()
    try:
        dep = client.submit(f"bench:{name}", name, str(build))
        out["id"] = dep["id"]
        for event in client.events(dep["id"], follow=True):
            if event["type"] == "status" and event["payload"].get("status") == "live":
                out["live"] = time.time()
        out["status"] = client.get(dep["id"])["status"]
    except Exception as e:  # noqa: BLE001 - recorded, the round goes on
        out["status"] = f"error: {e}"
    out["ended"] = time.time()


def deploy_all(host: Host, builds: Path, example: Path, names: list[str]) -> list[dict[str, Any]]:
    outs: list[dict[str, Any]] = [{} for _ in names]
    threads = []
    for name, out in zip(names, outs, strict=True):
        build = builds / name
        if not build.exists():
            shutil.copytree(example, build, symlinks=True)
        threads.append(threading.Thread(target=one_deploy, args=(host.client, build, name, out)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outs


def summarize(outs: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    live = [o["live"] - o["submitted"] for o in outs if "live" in o]
    return {
        "n": len(outs),
        "live": len(live),
        "statuses": dict(Counter(str(o.get("status")) for o in outs)),
        "wall_s": end - start,
        "deploys_per_min": len(live) / (end - start) * 60,
        "p50_s": statistics.median(live) if live else math.nan,
        "p95_s": pct(live, 0.95),
        "submit_to_live_s": sorted(live),
    }


def round_of(
    host: Host, builds: Path, example: Path, n: int, tag: str, load: float, pyspy: Path | None
) -> dict[str, Any]:
    names = [f"{tag}-{i}" for i in range(n)]
    before = host.calls()
    profiler = None
    if pyspy is not None and n == 10:
        profile = BENCH / "results" / f"pyspy-n10-{tag}.txt"
        profiler = subprocess.Popen(
            [str(pyspy), "record", "--pid", str(host.pid), "--rate", "50", "--format", "raw",
             "--output", str(profile), "--nonblocking", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    start = time.time()
    outs = deploy_all(host, builds, example, names)
    end = time.time()
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    time.sleep(1.2)
    samples = host.sampler.host_between(start, end)
    summary = summarize(outs, start, end)
    return {
        **summary,
        "load_1min": load,
        "host_peak": {
            "rss_mb": max((s.rss_mb for s in samples), default=math.nan),
            "threads": max((s.threads for s in samples), default=0),
            "fds": max((s.fds for s in samples), default=0),
        },
        "store_calls": calls_per_s(before, host.calls(), end - start),
        "summary": f"{summary['live']}/{n} live, p50 {summary['p50_s']:.2f} s, "
        f"p95 {summary['p95_s']:.2f} s, wall {end - start:.1f} s",
    }


def fanout(
    host: Host, builds: Path, example: Path, watchers: int, others: int, tag: str, load: float
) -> dict[str, Any]:
    """`watchers` SSE watchers on one deploy, `others` deploys running beside it."""
    secret_file = host.state_dir / "hook-secret"
    secret_file.write_text(host.secret)
    secret_file.chmod(0o600)
    target_name = f"{tag}-watched"
    target_build = builds / target_name
    shutil.copytree(example, target_build, symlinks=True)
    before = host.calls()
    start = time.time()
    target = host.client.submit(f"bench:{target_name}", target_name, str(target_build))
    out_file = host.state_dir / "watchers.json"
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "scale_watchers.py"), "--url", host.url,
         "--secret-file", str(secret_file), "--deployment", target["id"],
         "--watchers", str(watchers), "--out", str(out_file)],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
    )  # fmt: skip
    assert proc.stdout is not None
    connected = json.loads(proc.stdout.readline())
    outs = deploy_all(host, builds, example, [f"{tag}-{i}" for i in range(others)])
    proc.wait(timeout=1800)
    end = time.time()
    stored = [e["id"] for e in host.client.events(target["id"], follow=False)]
    published = host.published()
    records = json.loads(out_file.read_text())["watchers"]
    exact = lost = doubled = 0
    delays: list[float] = []
    for rec in records:
        ids = [e[0] for e in rec["events"]]
        counts = Counter(ids)
        lost += sum(1 for i in stored if i not in counts)
        doubled += sum(c - 1 for c in counts.values() if c > 1)
        exact += ids == stored and rec["error"] is None
        for eid, _, received in rec["events"]:
            sent = published.get((target["id"], eid))
            if sent is not None and sent > connected["at"]:
                delays.append(received - sent)
    return {
        "watchers": watchers,
        "connected": connected["connected"],
        "connect_s": connected["at"] - start,
        "others": others,
        "others_live": sum(1 for o in outs if "live" in o),
        "target_status": host.client.get(target["id"])["status"],
        "events": len(stored),
        "watchers_exact": exact,
        "lost": lost,
        "doubled": doubled,
        "errors": sorted({r["error"] for r in records if r["error"]})[:5],
        "delays_measured": len(delays),
        "delay_p50_ms": pct(delays, 0.5) * 1e3,
        "delay_p99_ms": pct(delays, 0.99) * 1e3,
        "delay_max_ms": max(delays, default=math.nan) * 1e3,
        "load_1min": load,
        "store_calls": calls_per_s(before, host.calls(), end - start),
        "others_p50_s": summarize(outs, start, end)["p50_s"],
    }
