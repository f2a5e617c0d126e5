"""Load, the soak: DEPLOYS deploys through one `forge-dispatcher serve` (process launcher,
SQLite, FORGE_MAX_CONCURRENT=4) on a zero-delay sandbox, in waves of one deploy per project
(a pool of projects, each redeployed wave after wave with one new file, so every deploy
uploads). After each wave, with nothing running, the dispatcher's RSS, open fds and threads
are read from /proc (`bench.scale_probe.host_sample`; psutil is not a dependency); a thread
also samples them every second during the waves (the peaks).

Verdicts: each deploy ends `live` within its wave's bound (else lost / stuck); the providers
hold one repo, one Supabase project and one Vercel project per project and one Vercel
deployment per deploy; no attempt folder is left; and the dispatcher does not grow without
bound: after the warm-up wave, RSS, fds and threads may rise by a floor plus a slope per 100
deploys (the bounds below), and over a run long enough to fit a line (>= 300 deploys) the
least-squares slope of its second half must stay under the bound. A growth past a bound is
`leaked`. (Measured: 300 deploys grew RSS ~2 MB per 100 while tracemalloc showed the
dispatcher's Python heap flat over 120 deploys in-process: the growth is SQLite's page caches
filling as the file grows, bounded by the pool, hence the floor and the second-half fit.)

Supabase's budget is lifted for the soak: 1,000 deploys at ~8 Management API calls each would
take over an hour at its 120 calls a minute, and what the soak measures is the dispatcher (the
burst keeps the budget and shows the runners pacing themselves under it).
"""

from __future__ import annotations

import inspect
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.reliability.served import Served, judge_ends, judge_resources, serving
from bench.reliability.table import Verdict
from bench.reliability.world import World, unique_name
from bench.scale_probe import HostSample, host_sample
from dispatcher.store.sqlite import SQLiteStore

FULL_DEPLOYS = 1000
SAMPLE_DEPLOYS = 25
PROJECTS = 20  # the wave size; fewer when the run is smaller than five waves
CONCURRENCY = 4
WAVE_S_PER_DEPLOY = 15.0  # a zero-delay deploy takes 2-8 s on a loaded 2-core machine
WAVE_SLACK_S = 120.0
FIT_MIN_DEPLOYS = 300  # fewer points than this make the slope noise, not a trend

# The SQLite store's pool opens connections as concurrent calls first need them, up to its
# size; each holds the database and its WAL open (2 fds) and a page cache (SQLite's default
# cache_size, 2 MiB) that fills as the file grows. Bounded, but it can still be filling after
# the warm-up wave.
STORE_POOL = int(inspect.signature(SQLiteStore).parameters["pool_size"].default)
# What "grows without bound" means, per series: (floor, per 100 deploys). After the warm-up
# wave the dispatcher holds most of what it keeps for good (imported modules, the thread
# pools); what may still move is the store's pool (above), allocator high water and a
# keep-alive socket or two, hence the floors. The slopes sit far below what keeping anything
# per deploy would cost: one deploy's events kept in memory are ~50 KB (5 MB per 100), one fd
# or thread left per deploy is 100 per 100.
BOUNDS: dict[str, tuple[float, float]] = {
    "rss_mb": (8.0 + 2.0 * STORE_POOL, 2.0),
    "fds": (3.0 + 2.0 * STORE_POOL, 1.0),
    "threads": (4.0, 1.0),
}


@dataclass
class Probe:
    """The dispatcher read from /proc every second (the peaks), on a thread."""

    pid: int
    peaks: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BOUNDS, 0.0))
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            sample = host_sample(self.pid)
            if sample is not None:
                for name in BOUNDS:
                    self.peaks[name] = max(self.peaks[name], float(getattr(sample, name)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def run(w: World, deploys: int) -> list[Verdict]:
    """One verdict per deploy, then the providers' and the dispatcher's."""
    w.reset()
    w.sandbox.set_time_scale(0)
    w.sandbox.admin("PUT", "supabase/rate-limit", {"limit": 1_000_000}).raise_for_status()
    try:
        with serving(w, "soak", FORGE_MAX_CONCURRENT=str(CONCURRENCY)) as served:
            return _soak(w, served, deploys)
    finally:
        w.sandbox.admin("PUT", "supabase/rate-limit", {"limit": 120}).raise_for_status()
        w.reset()
        w.sandbox.set_time_scale(w.sandbox.time_scale)


def _soak(w: World, served: Served, deploys: int) -> list[Verdict]:
    size = max(1, min(PROJECTS, deploys // 5))
    tag = unique_name("")[1:7]
    projects = [f"sk{tag}-{i}" for i in range(size)]
    for project in projects:
        served.build(project)
    verdicts: list[Verdict] = []
    quiet: list[tuple[int, HostSample]] = []
    files: list[Counter[str]] = []  # what the fds are, at each quiet point
    live: Counter[str] = Counter(dict.fromkeys(projects, 0))
    probe = Probe(served.pid)
    started = time.monotonic()
    try:
        done = 0
        while done < deploys:
            wave = projects[: deploys - done]
            verdicts += _wave(served, wave, done // size, live)
            done += len(wave)
            sample = host_sample(served.pid)
            if sample is None:
                raise RuntimeError(f"the dispatcher is gone:\n{served.serve.tail()}")
            quiet.append((done, sample))
            if done % 100 < size or done == deploys:  # a long kind says how far it got
                print(
                    f"load: soak: {done} deploys, {sum(live.values())} live, dispatcher "
                    f"{sample.rss_mb:.1f} MB, {sample.fds} fds, {sample.threads} threads",
                    flush=True,
                )
            files.append(open_files(served.pid, served.root))
    finally:
        probe.stop()
    elapsed = time.monotonic() - started
    whole = Verdict(f"the dispatcher and the providers after {deploys} deploys")
    _judge_growth(whole, quiet, first_wave=size)
    judge_resources(whole, w, live)
    left = list((served.root / "state" / "runs").glob("*"))
    if left:
        whole.leaked.append(f"{len(left)} attempt folders left: {[p.name for p in left[:3]]}")
    whole.figures.update(
        deploys=deploys,
        projects=size,
        seconds=round(elapsed, 1),
        deploys_per_min=round(sum(live.values()) / elapsed * 60, 1),
        peaks={k: round(v, 1) for k, v in probe.peaks.items()},
        samples=[(n, round(s.rss_mb, 1), s.fds, s.threads) for n, s in quiet],
        fds_after_warmup=dict(files[min(1, len(files) - 1)]),
        fds_at_end=dict(files[-1]),
    )
    shown = {k: v for k, v in whole.figures.items() if k != "samples"}
    print(f"load: soak: {shown}", flush=True)
    return [*verdicts, whole]


def open_files(pid: int, root: Path) -> Counter[str]:
    """What the process's fds point at: a file's path (under `root`: relative), or the kind
    (socket, pipe, anon_inode)."""
    found: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:  # closed while listed
            continue
        if ":[" in target or target.startswith("anon"):
            target = target.split(":", 1)[0]
        found[target.removeprefix(f"{root}/")] += 1
    return found


def _wave(served: Served, wave: list[str], number: int, live: Counter[str]) -> list[Verdict]:
    """One deploy of each project of `wave`, each with a new file; waits for all to end."""
    verdicts: dict[str, Verdict] = {}
    lost: list[Verdict] = []  # refused at submit: no deployment to wait for
    for project in wave:
        (served.api.builds_root / project / "public" / "soak.txt").write_text(f"wave {number}")
        verdict = Verdict(f"wave {number}: {project}")
        response = served.api.submit(project, project)
        if response.status_code != 202:
            verdict.lost.append(f"submit answered {response.status_code}: {response.text[:300]}")
            lost.append(verdict)
        else:
            verdicts[response.json()["id"]] = verdict
    final = judge_ends(served, verdicts, WAVE_SLACK_S + WAVE_S_PER_DEPLOY * len(wave))
    live.update(d["project_id"] for d in final.values() if d["status"] == "live")
    return [*verdicts.values(), *lost]


def slope_per_100(points: list[tuple[int, float]]) -> float:
    """The least-squares slope of value against deploys done, per 100 deploys (0 with fewer
    than two distinct x)."""
    if len({x for x, _ in points}) < 2:
        return 0.0
    fit = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return fit.slope * 100


def _judge_growth(verdict: Verdict, quiet: list[tuple[int, HostSample]], first_wave: int) -> None:
    """Past the warm-up wave: growth within floor + slope x span; and over a run long enough
    to fit a line, the slope of its second half (bounded caches have filled by then; what
    still rises there rises without bound) within its bound."""
    measured = [(n, s) for n, s in quiet if n > first_wave] or quiet[-1:]
    span = measured[-1][0] - measured[0][0]
    slopes: dict[str, float] = {}
    late: dict[str, float] = {}
    for name, (floor, per_100) in BOUNDS.items():
        points = [(n, float(getattr(s, name))) for n, s in measured]
        slopes[name] = round(slope_per_100(points), 3)
        late[name] = round(slope_per_100(points[len(points) // 2 :]), 3)
        growth = max(y for _, y in points) - points[0][1]
        allowed = floor + per_100 * span / 100
        if growth > allowed:
            verdict.leaked.append(
                f"{name} grew {growth:.1f} over {span} deploys (bound {allowed:.1f})"
            )
        if span >= FIT_MIN_DEPLOYS and late[name] > per_100:
            verdict.leaked.append(
                f"{name} still rises {late[name]:.2f} per 100 deploys in the second half of "
                f"the run (bound {per_100})"
            )
    verdict.figures["second_half_slope_per_100_deploys"] = late
    verdict.figures["slope_per_100_deploys"] = slopes
    verdict.figures["bounds"] = {k: {"floor": f, "per_100": p} for k, (f, p) in BOUNDS.items()}
    verdict.figures["measured_span"] = span
