"""A running `forge-sandbox serve` for tests: start, announce, admin calls, restart, stop."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.support.loopback import strace_prefix, violations


class SandboxProcess:
    def __init__(self, state_dir: Path, postgres_url: str | None, time_scale: float = 0.005):
        self.state_dir = state_dir
        self.postgres_url = postgres_url
        self.time_scale = time_scale
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.audit_logs: list[Path] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, extra: list[str] | None = None, timeout: float = 120) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        audit = self.state_dir / f"strace-{len(self.audit_logs)}.log"
        self.audit_logs.append(audit)
        argv = [
            *strace_prefix(audit),
            sys.executable,
            "-m",
            "sandbox.cli",
            "serve",
            "--state-dir",
            str(self.state_dir),
            "--record",
            "--time-scale",
            str(self.time_scale),
        ]
        env = dict(os.environ)
        if self.postgres_url:  # through the environment: no password in a process listing
            env["FORGE_SANDBOX_POSTGRES_URL"] = self.postgres_url
        argv += extra or []
        stderr = (self.state_dir / "sandbox.stderr").open("ab")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"sandbox did not announce itself; stderr:\n{self.stderr()}")
            if selector.select(timeout=min(remaining, 1.0)):
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    continue
                line += chunk
        selector.close()
        self.info = json.loads(line.decode())
        return self.info

    def _sandbox_pid(self) -> int | None:
        """The sandbox itself: strace's child (SIGTERM to strace would not reach it)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def stop(self) -> int | None:
        """SIGTERM the sandbox; its exit code (strace exits with its tracee's status)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            pid = self._sandbox_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> dict[str, Any]:
        self.stop()
        return self.start()

    def stderr(self) -> str:
        path = self.state_dir / "sandbox.stderr"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def loopback_violations(self) -> list[str]:
        return [v for log in self.audit_logs for v in violations(log)]

    # -- admin -----------------------------------------------------------------------------
    @property
    def ca_file(self) -> str:
        return str(self.info["ca_file"])

    def admin(self, method: str, path: str, json_body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.info['admin']['url']}/{path.lstrip('/')}",
            json=json_body,
            headers={"Authorization": f"Bearer {self.info['admin']['token']}"},
            verify=self.ca_file,
            timeout=30,
        )

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self.admin("PUT", "faults", rules).raise_for_status()

    def set_time_scale(self, scale: float) -> None:
        self.admin("PUT", "time-scale", {"scale": scale}).raise_for_status()

    def resources(self) -> dict[str, Any]:
        response = self.admin("GET", "resources")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def traffic(self) -> list[dict[str, Any]]:
        path = self.state_dir / "traffic.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def owned_by(sandbox: SandboxProcess, name: str) -> dict[str, int]:
    """How many repos, Supabase projects, Vercel projects and deployments app `name` has."""
    res = sandbox.resources()
    return {
        "repos": sum(r["name"] == name for r in res["github"]["repos"]),
        "supabase": sum(p["name"] == f"forge-{name}" for p in res["supabase"]["projects"]),
        "vercel": sum(p["name"] == name for p in res["vercel"]["projects"]),
        "deployments": sum(d["project"] == name for d in res["vercel"]["deployments"]),
    }
