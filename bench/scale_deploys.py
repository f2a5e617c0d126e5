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
from collections.abc import Callable
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

    def __init__(
        self, env: dict[str, str], probe: Path, secret: str, watched: dict[str, int]
    ) -> None:
        self.env = env
        self.watched = watched
        self.probe = probe
        self.secret = secret
        self.state_dir = Path(env["FORGE_STATE_DIR"])
        self.process: subprocess.Popen[bytes] | None = None
        self.ids: set[str] = set()  # the deployments submitted through this host

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
        self.sampler = Sampler(self.pid, str(self.state_dir / "runs"), self.watched)
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

    def _probe(self) -> dict[str, Any]:
        """Ask the dispatcher for its probe file (SIGUSR1) and read it once it is new."""
        old = self.probe.stat().st_mtime_ns if self.probe.exists() else 0
        assert self.process is not None
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.probe.exists() and self.probe.stat().st_mtime_ns != old:
                data: dict[str, Any] = json.loads(self.probe.read_text())
                return data
            time.sleep(0.05)
        raise SystemExit("the dispatcher did not write its probe file")

    def calls(self) -> dict[str, list[float]]:
        calls: dict[str, list[float]] = self._probe()["calls"]
        return calls

    def published(self) -> dict[tuple[str, int], float]:
        return {(dep, eid): t for dep, eid, t in self._probe()["published"]}

    def runner_costs(self) -> dict[str, Any]:
        ours = {f"{i}-1" for i in self.ids}  # not another engineer's container
        costs = [c for k, c in self.sampler.runners.items() if k in ours]
        rss = [c.peak_rss_mb for c in costs]
        cpu = [c.cpu_s for c in costs]
        return {
            "n": len(costs),
            "peak_rss_mb_p50": statistics.median(rss) if rss else math.nan,
            "peak_rss_mb_max": max(rss, default=math.nan),
            "cpu_s_p50": statistics.median(cpu) if cpu else math.nan,
            "cpu_s_mean": statistics.fmean(cpu) if cpu else math.nan,
            "processes_peak_max": max((c.processes_peak for c in costs), default=0),
            "cpu_s_by_command": {
                k: round(v, 2) for k, v in list(self.sampler.command_cpu().items())[:12]
            },
        }

    def cpu(self, outs: list[dict[str, Any]], start: float, end: float) -> dict[str, float]:
        """CPU seconds spent during [start, end]: the dispatcher, the sandbox, the machine (all
        processes, other engineers' included) and these deploys' runners."""
        spent = self.sampler.cpu_between(start, end)
        runners = self.sampler.runners
        spent["runners"] = sum(
            runners[key].cpu_s for o in outs if (key := f"{o.get('id')}-1") in runners
        )
        spent["capacity"] = (end - start) * (os.cpu_count() or 1)
        return {k: round(v, 2) for k, v in spent.items()}


def calls_per_s(before: dict[str, list[float]], after: dict[str, list[float]], secs: float) -> Any:
    return {
        name: {
            "per_s": round((row[0] - before.get(name, [0, 0.0])[0]) / secs, 1),
            "busy_ms_per_s": round((row[1] - before.get(name, [0, 0.0])[1]) / secs * 1e3, 1),
        }
        for name, row in sorted(after.items())
        if row[0] != before.get(name, [0, 0.0])[0]
    }


def one_deploy(client: Client, build: Path, name: str, out: dict[str, Any], ids: set[str]) -> None:
    """Submit, follow the JSON-lines stream to its end; note submit and the `live` event."""
    out["submitted"] = time.time()
    try:
        dep = client.submit(f"bench:{name}", name, str(build))
        out["id"] = dep["id"]
        ids.add(dep["id"])
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
        threads.append(
            threading.Thread(target=one_deploy, args=(host.client, build, name, out, host.ids))
        )
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
        "cpu_s": host.cpu(outs, start, end),
        "summary": f"{summary['live']}/{n} live, p50 {summary['p50_s']:.2f} s, "
        f"p95 {summary['p95_s']:.2f} s, wall {end - start:.1f} s",
    }


def fanout(
    host: Host,
    builds: Path,
    example: Path,
    watchers: int,
    others: int,
    tag: str,
    load: float,
    scale: float,
    set_scale: Callable[[float], None],
    processes: int = 4,
    pyspy: Path | None = None,
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
    # The watched deploy waits in the queue behind another deploy of its project (another app
    # name: no resource shared) until every watcher is connected; that one is made slow (its
    # Supabase project created while the sandbox's time runs x500) and is then cancelled, and
    # the watched one starts: all its events are published live.
    client = host.client
    set_scale(500 * scale)
    blocker = client.submit(f"bench:{target_name}", f"{target_name}-blocker", str(target_build))
    target = client.submit(f"bench:{target_name}", target_name, str(target_build))
    host.ids.add(blocker["id"])
    host.ids.add(target["id"])
    procs = []
    for p in range(processes):
        out_file = host.state_dir / f"watchers-{tag}-{p}.json"
        share = watchers // processes + (1 if p < watchers % processes else 0)
        procs.append((out_file, subprocess.Popen(
            [sys.executable, str(BENCH / "scale_watchers.py"), "--url", host.url,
             "--secret-file", str(secret_file), "--deployment", target["id"],
             "--watchers", str(share), "--out", str(out_file)],
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(BENCH.parent)},
        )))  # fmt: skip
    connected = {"connected": 0, "at": 0.0}
    for _, proc in procs:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        connected = {"connected": connected["connected"] + line["connected"],
                     "at": max(connected["at"], line["at"])}  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        e["type"] == "checkpoint" and e["payload"].get("key") == "supabase.ref"
        for e in client.events(blocker["id"], follow=False)
    ):
        time.sleep(0.5)
    set_scale(scale)
    client.action(blocker["id"], "cancel")
    queued_until_connected = client.get(target["id"])["status"] == "queued"
    profiler = None
    if pyspy is not None:
        profiler = subprocess.Popen(
            [str(pyspy), "record", "--pid", str(host.pid), "--rate", "50", "--format", "raw",
             "--output", str(BENCH / "results" / f"pyspy-fanout-{tag}.txt"), "--nonblocking",
             "--threads", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    outs = deploy_all(host, builds, example, [f"{tag}-{i}" for i in range(others)])
    records: list[dict[str, Any]] = []
    watcher_cpu = 0.0
    for out_file, proc in procs:
        proc.wait(timeout=1800)
        data = json.loads(out_file.read_text())
        records.extend(data["watchers"])
        watcher_cpu += data["cpu_s"]
    end = time.time()
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)
    stored = [e["id"] for e in host.client.events(target["id"], follow=False)]
    published = host.published()
    exact = lost = doubled = 0
    delays: list[float] = []
    per_event: dict[int, list[float]] = {}
    kinds = {e[0]: e[1] for rec in records for e in rec["events"]}
    for rec in records:
        ids = [e[0] for e in rec["events"]]
        counts = Counter(ids)
        lost += sum(1 for i in stored if i not in counts)
        doubled += sum(c - 1 for c in counts.values() if c > 1)
        exact += ids == stored and rec["error"] is None
        for eid, _, received in rec["events"]:
            sent = published.get((target["id"], eid))
            if sent is not None and rec["connected"] and sent > rec["connected"]:
                delays.append(received - sent)
                per_event.setdefault(eid, []).append(received - sent)
    return {
        "watchers": watchers,
        "queued_until_connected": queued_until_connected,
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
        # per event: (type, the first watcher's delay, the median, the last watcher's), ms
        "delay_by_event_ms": {
            eid: [
                kinds.get(eid),
                round(min(d) * 1e3),
                round(statistics.median(d) * 1e3),
                round(max(d) * 1e3),
            ]
            for eid, d in sorted(per_event.items())
        },
        "load_1min": load,
        "store_calls": calls_per_s(before, host.calls(), end - start),
        "others_p50_s": summarize(outs, start, end)["p50_s"] if outs else math.nan,
        "watcher_processes": processes,
        "watcher_cpu_s": round(watcher_cpu, 2),
        "wall_s": round(end - start, 2),
        "cpu_s": host.cpu(outs, start, end),
        "host_peak_threads": max(
            (s.threads for s in host.sampler.host_between(start, end)), default=0
        ),
    }
