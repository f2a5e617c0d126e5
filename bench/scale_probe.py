"""bench/scale.py, the sampler: what the dispatcher process and each runner cost, from /proc.

Every `period_s` it reads the dispatcher's RSS, threads and open fds, and the process tree of
every runner of ours (the process launcher starts each under `_wrap.py` in a session of its
own, named by its attempt folder `forge-deploy-<id>-<attempt>`): the sum of the session's RSS
and of its CPU time (utime + stime + the children it reaped). Per runner it keeps the peaks;
CPU seconds are the last (largest) sum seen, a lower bound by at most one period. It also
keeps the CPU time of named processes (the dispatcher, the sandbox), of the whole machine
(/proc/stat), and each runner process's own CPU by command name (what in a runner costs).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_ATTEMPT = re.compile(r"forge-deploy-(\S+)-(\d+)")


@dataclass
class HostSample:
    t: float
    rss_mb: float
    threads: int
    fds: int
    cpu: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds so far


def cpu_of(pid: int, children: bool = False) -> float:
    """CPU seconds of the process (with `children`: and of the children it reaped)."""
    fields = _stat(str(pid))
    if fields is None:
        return 0.0
    return sum(int(x) for x in fields[11 : 15 if children else 13]) / _TICK


def machine_busy() -> float:
    """CPU seconds the machine spent not idle since boot, all CPUs."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


@dataclass
class RunnerCost:
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    processes_peak: int = 0


def _stat(pid: str) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # fields from 3 (state) on


def host_sample(pid: int) -> HostSample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(values["VmRSS"].split()[0])
    return HostSample(time.time(), rss_kb / 1024, int(values["Threads"]), fds)


@dataclass
class Sampler:
    host_pid: int
    state_dir: str  # the process launcher's runs folder: only wrappers under it are ours
    watched: dict[str, int] = field(default_factory=dict)  # name -> pid, CPU time kept
    period_s: float = 0.25
    by_command: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    host: list[HostSample] = field(default_factory=list)
    runners: dict[str, RunnerCost] = field(default_factory=dict)  # "<deployment>-<attempt>"
    _names: dict[str, str | None] = field(default_factory=dict)  # container id -> runner key
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            sample = host_sample(self.host_pid)
            if sample is not None:
                sample.cpu = {name: cpu_of(p, True) for name, p in self.watched.items()}
                sample.cpu["dispatcher"] = cpu_of(self.host_pid)
                sample.cpu["machine"] = machine_busy()
                self.host.append(sample)
            self._runners()
            self._containers()

    def _runners(self) -> None:
        sessions: dict[str, str] = {}  # session id (the wrapper's pid) -> attempt key
        by_session: dict[str, list[tuple[str, str, list[str]]]] = {}  # (pid, comm, fields)
        for entry in Path("/proc").iterdir():
            pid = entry.name
            if not pid.isdigit():
                continue
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            comm = text.split("(", 1)[1].rsplit(")", 1)[0]
            fields = text.rsplit(")", 1)[1].split()  # from field 3 (state) on
            by_session.setdefault(fields[3], []).append((pid, comm, fields))
            if fields[3] == pid:  # a session leader: is it one of our wrappers?
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                match = _ATTEMPT.search(cmd)
                if "_wrap.py" in cmd and self.state_dir in cmd and match:
                    sessions[pid] = f"{match.group(1)}-{match.group(2)}"
        for sid, key in sessions.items():
            members = by_session.get(sid, [])
            rss = sum(int(f[21]) for _, _, f in members) * _PAGE_KB / 1024
            cpu = sum(sum(int(x) for x in f[11:15]) for _, _, f in members) / _TICK
            cost = self.runners.setdefault(key, RunnerCost())
            cost.peak_rss_mb = max(cost.peak_rss_mb, rss)
            cost.cpu_s = max(cost.cpu_s, cpu)
            cost.processes_peak = max(cost.processes_peak, len(members))
            for pid, comm, f in members:  # each process's own CPU (children not included)
                own = (int(f[11]) + int(f[12])) / _TICK
                self.by_command[(pid, f[19])] = (comm, own)

    def _containers(self) -> None:
        """The Docker launcher's runners: each container's cgroup (v1, cgroupfs driver), peak
        memory (page cache and its tmpfs included) and CPU; ours by name, looked up once."""
        root = Path("/sys/fs/cgroup/memory/docker")
        if not root.is_dir():
            return
        for entry in root.iterdir():
            cid = entry.name
            if len(cid) != 64:
                continue
            if cid not in self._names:
                self._names[cid] = self._container_key(cid)
            key = self._names[cid]
            if key is None:
                continue
            try:
                peak = int((entry / "memory.max_usage_in_bytes").read_text())
                cpu = int(Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage").read_text())
            except (OSError, ValueError):
                continue
            cost = self.runners.setdefault(key, RunnerCost())
            cost.peak_rss_mb = max(cost.peak_rss_mb, peak / 2**20)
            cost.cpu_s = max(cost.cpu_s, cpu / 1e9)

    def _container_key(self, cid: str) -> str | None:
        import docker

        try:
            name = str(docker.from_env().containers.get(cid).name)
        except docker.errors.DockerException:
            return None
        match = _ATTEMPT.fullmatch(name)
        return f"{match.group(1)}-{match.group(2)}" if match else None

    def command_cpu(self) -> dict[str, float]:
        """CPU seconds of the runners' processes by command name, all runners (lower bound:
        a process that lived less than one period is missed)."""
        out: dict[str, float] = {}
        for comm, own in self.by_command.values():
            out[comm] = out.get(comm, 0.0) + own
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        inside = self.host_between(start, end)
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        return {k: last.cpu[k] - first.cpu.get(k, 0.0) for k in last.cpu}

    def host_between(self, start: float, end: float) -> list[HostSample]:
        return [s for s in self.host if start <= s.t <= end]
