"""bench/scale.py, the output: the table on stdout, the JSON and the chart under bench/results/."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.10
TARGET_INGEST = 50_000


def by_n(rounds: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One row per N: the rounds of one N pooled (N = 1 runs several times)."""
    rows: dict[int, dict[str, Any]] = {}
    for r in rounds:
        rows.setdefault(r["n"], {"rounds": []})["rounds"].append(r)
    for n, row in rows.items():
        live = [x for r in row["rounds"] for x in r["submit_to_live_s"]]
        row.update(
            n=n,
            live=sum(r["live"] for r in row["rounds"]),
            deploys=sum(r["n"] for r in row["rounds"]),
            p50_s=statistics.median(live) if live else math.nan,
            p95_s=sorted(live)[max(0, math.ceil(0.95 * len(live)) - 1)] if live else math.nan,
            deploys_per_min=statistics.median(r["deploys_per_min"] for r in row["rounds"]),
            rss_mb=max(r["host_peak"]["rss_mb"] for r in row["rounds"]),
            threads=max(r["host_peak"]["threads"] for r in row["rounds"]),
            fds=max(r["host_peak"]["fds"] for r in row["rounds"]),
            load=row["rounds"][0]["load_1min"],
            **cpu_row(row["rounds"]),
        )
    base = rows[min(rows)]["p50_s"] if rows else math.nan
    for row in rows.values():
        row["ratio"] = row["p50_s"] / base
    return dict(sorted(rows.items()))


def cpu_row(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """CPU during the rounds: the dispatcher's and the sandbox's share of one core, the
    runners' CPU seconds per deploy, and how busy the whole machine was (all its CPUs)."""
    total: dict[str, float] = {}
    for r in rounds:
        for k, v in r.get("cpu_s", {}).items():
            total[k] = total.get(k, 0.0) + v
    wall = sum(r["wall_s"] for r in rounds)
    if not total or not wall:
        return {"disp_pct": math.nan, "sandbox_pct": math.nan, "runner_cpu_s": math.nan,
                "busy_pct": math.nan}  # fmt: skip
    return {
        "disp_pct": 100 * total.get("dispatcher", math.nan) / wall,
        "sandbox_pct": 100 * total.get("sandbox", math.nan) / wall,
        "runner_cpu_s": total["runners"] / sum(r["n"] for r in rounds),
        "busy_pct": 100 * total.get("machine", math.nan) / total["capacity"],
    }


def slopes(rows: dict[int, dict[str, Any]]) -> dict[str, float]:
    ns = list(rows)
    if len(ns) < 2:
        return {}
    return {
        key: statistics.linear_regression(ns, [rows[n][key] for n in ns]).slope
        for key in ("rss_mb", "threads", "fds")
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['command']}   started {report['started']}, {report['cpus']} CPUs (shared), "
          f"load at start {report['load_at_start'][0]:.2f}")  # fmt: skip
    deploys = report.get("deploys")
    if deploys:
        rows = by_n(deploys["rounds"])
        critical = 129 * report["scale"]
        print(f"\n1-2. concurrent deploys, realistic profile x {report['scale']} (critical path "
              f"{critical:.1f} s), launcher {report['launcher']}")  # fmt: skip
        print(f"{'N':>3} {'live':>7} {'dep/min':>8} {'p50 s':>7} {'p95 s':>7} {'p50/p50(1)':>10}"
              f" {'RSS MB':>7} {'threads':>7} {'fds':>5} {'load':>5} {'disp%':>6} {'sbx%':>5}"
              f" {'run s':>6} {'busy%':>6}")  # fmt: skip
        idle = deploys["idle"]
        print(f"{'0':>3} {'':>7} {'':>8} {'':>7} {'':>7} {'':>10} {idle['rss_mb']:7.1f}"
              f" {idle['threads']:7d} {idle['fds']:5d}")  # fmt: skip
        for n, r in rows.items():
            print(f"{n:3d} {r['live']:3d}/{r['deploys']:<3d} {r['deploys_per_min']:8.1f}"
                  f" {r['p50_s']:7.2f} {r['p95_s']:7.2f} {r['ratio']:10.3f} {r['rss_mb']:7.1f}"
                  f" {r['threads']:7d} {r['fds']:5d} {r['load']:5.2f} {r['disp_pct']:6.1f}"
                  f" {r['sandbox_pct']:5.1f} {r['runner_cpu_s']:6.2f}"
                  f" {r['busy_pct']:6.1f}")  # fmt: skip
        print(
            "   disp%/sbx%: dispatcher/sandbox CPU, % of one core; run s: runner CPU s per "
            "deploy; busy%: the whole machine (all CPUs, other users included)"
        )
        s = slopes(rows)
        if s:
            print(f"   per running deploy (slope over N): {s['rss_mb']:.2f} MB RSS, "
                  f"{s['threads']:.2f} threads, {s['fds']:.2f} fds")  # fmt: skip
        if 10 in rows:
            ok = rows[10]["ratio"] <= TARGET_RATIO
            print(f"   N=10 ratio {rows[10]['ratio']:.3f} (target <= {TARGET_RATIO}: "
                  f"{'meets' if ok else 'MISSES'})")  # fmt: skip
        c = deploys["runners"]
        print(f"   runner (whole process tree), {c['n']} deploys: peak RSS p50 "
              f"{c['peak_rss_mb_p50']:.0f} MB (max {c['peak_rss_mb_max']:.0f}), CPU "
              f"{c['cpu_s_p50']:.2f} s p50 ({c['cpu_s_mean']:.2f} mean), "
              f"<= {c['processes_peak_max']} processes")  # fmt: skip
        print("   runner CPU s by command (all deploys, lower bound): " + ", ".join(
            f"{k} {v:.1f}" for k, v in c.get("cpu_s_by_command", {}).items()))  # fmt: skip
        for f in deploys.get("fanout", []):
            print(f"\n3. SSE fan-out: {f['watchers']} watchers on one deploy + {f['others']} "
                  f"deploys ({f['others_live']} live); connected {f['connected']} in "
                  f"{f['connect_s']:.1f} s (the watched deploy queued until then: "
                  f"{f['queued_until_connected']})")  # fmt: skip
            print(f"   {f['events']} events; watchers with every event exactly once, in order: "
                  f"{f['watchers_exact']}/{f['watchers']}; lost {f['lost']}, doubled "
                  f"{f['doubled']}; errors {f['errors']}")  # fmt: skip
            print(f"   store -> watcher ({f['delays_measured']} deliveries published after the "
                  f"watcher connected): p50 "
                  f"{f['delay_p50_ms']:.0f} ms, p99 {f['delay_p99_ms']:.0f} ms, max "
                  f"{f['delay_max_ms']:.0f} ms; the deploys beside it: p50 "
                  f"{f['others_p50_s']:.2f} s")  # fmt: skip
            cpu = f["cpu_s"]
            print(f"   CPU over {f['wall_s']:.0f} s: dispatcher {cpu.get('dispatcher', 0):.1f} s, "
                  f"sandbox {cpu.get('sandbox', 0):.1f} s, {f['watcher_processes']} watcher "
                  f"processes {f['watcher_cpu_s']:.1f} s, machine {cpu.get('machine', 0):.1f} of "
                  f"{cpu.get('capacity', 0):.0f} s; dispatcher threads peak "
                  f"{f['host_peak_threads']}")  # fmt: skip
    storage = report["storage"]
    print("\n4. ingest, 10k runner lines (events/s)   5. claim, 1,000 queued (ms per claim)")
    print(f"{'store':11} {'append_events':>13} {'Ingestor':>9} {'target':>7}   {'p50':>6}"
          f" {'full':>6} {'empty':>6} {'full/empty':>10} {'max':>6} in order")  # fmt: skip
    for name, s in storage.items():
        c = s["claim"]
        ok = min(s["append_events_per_s"], s["ingestor_events_per_s"]) >= TARGET_INGEST
        print(f"{name:11} {s['append_events_per_s']:13.0f} {s['ingestor_events_per_s']:9.0f}"
              f" {'meets' if ok else 'MISSES':>7}   {c['p50_ms']:6.2f}"
              f" {c['p50_ms_by_tenth'][0]:6.2f} {c['p50_ms_by_tenth'][-1]:6.2f}"
              f" {c['full_over_empty']:10.2f} {c['max_ms']:6.1f} {c['in_order']}")  # fmt: skip
        print(
            f"{'':11} claim p50 ms per tenth of the queue (full -> empty): "
            + " ".join(f"{x:.2f}" for x in c["p50_ms_by_tenth"])
        )
        print(
            f"{'':11} claim p50 ms with k queued of a running project ahead: "
            + ", ".join(f"k={k}: {v:.2f}" for k, v in c["blocked"].items())
        )


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = by_n(report["deploys"]["rounds"])
    ns = list(rows)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.plot(ns, [rows[n]["p50_s"] for n in ns], "o-", label="p50 submit → live")
    ax.plot(ns, [rows[n]["p95_s"] for n in ns], "s--", alpha=0.6, label="p95")
    base = rows[min(ns)]["p50_s"]
    ax.axhline(base * TARGET_RATIO, color="grey", ls=":", label="1.10 x p50(N=1)")
    ax.axhline(129 * report["scale"], color="green", ls="-.", alpha=0.6, label="critical path")
    ax.set_xlabel("concurrent deploys N")
    ax.set_ylabel("seconds")
    ax.set_xticks(ns)
    ax.set_ylim(bottom=0)
    ax.set_title(f"forge-deploy: {report['launcher']} launcher, realistic x{report['scale']}, "
                 f"{report['cpus']} shared CPUs")  # fmt: skip
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_results(report: dict[str, Any], folder: Path, started: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"scale-{report['launcher']}-{started}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nwrote {stem.with_suffix('.json')}")
    if report.get("deploys"):
        chart(report, stem.with_suffix(".png"))
        print(f"wrote {stem.with_suffix('.png')}")
