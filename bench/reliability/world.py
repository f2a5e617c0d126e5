"""What every reliability case runs against: a PostgreSQL cluster, one sandbox and the real
`forge-runner` under the loopback audit (the test suite's own harness, `tests/support`)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.postgres import ManagedCluster, free_port
from tests.support.runner import RunnerProcess, runner_env
from tests.support.sandbox import SandboxProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello-app"
MIGRATIONS = ["20250101000000", "20250102000000"]


@dataclass
class World:
    root: Path
    postgres_url: str
    sandbox: SandboxProcess
    later: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed at the end

    def runner(self, workdir: Path) -> RunnerProcess:
        workdir.mkdir(parents=True, exist_ok=True)
        return RunnerProcess(runner_env(self.sandbox), workdir)

    def build(self, name: str) -> Path:
        """A fresh copy of the example with one file Vercel has never seen (an upload)."""
        build = self.root / "builds" / name
        shutil.copytree(EXAMPLE, build)
        (build / "public" / "build.txt").write_text(name)
        return build

    def reset(self) -> None:
        """Between cases: no fault left, fresh Supabase rate-limit windows."""
        self.sandbox.set_faults([])
        self.sandbox.admin("DELETE", "supabase/rate-limit").raise_for_status()

    def count(self, name: str) -> dict[str, int]:
        """How many of each resource of app `name` exist at the providers."""
        return count_resources(self.sandbox.resources(), name)

    def migrations(self, name: str) -> list[list[str]]:
        res = self.sandbox.resources()
        return [
            [m["version"] for m in p["migrations"]]
            for p in res["supabase"]["projects"]
            if p["name"] == f"forge-{name}"
        ]

    def accounts(self) -> list[str]:
        """The ids of the accounts the sandbox hands out: GitHub org, Supabase org, Vercel team."""
        info = self.sandbox.info
        return [info["github"]["org"], info["supabase"]["org"], info["vercel"]["team"]]

    def secrets(self) -> list[str]:
        """Every token, database password and API key this sandbox knows."""
        info = self.sandbox.info
        known = [
            info["github"]["token"],
            info["supabase"]["token"],
            info["vercel"]["token"],
            info["admin"]["token"],
        ]
        for project in self.sandbox.resources()["supabase"]["projects"]:
            known.append(project.get("db_pass", ""))
            known.extend(project.get("api_keys", []))
        return [s for s in known if s and len(s) >= 8]


def count_resources(res: dict[str, Any], name: str) -> dict[str, int]:
    vercel_ids = {p["id"] for p in res["vercel"]["projects"] if p["name"] == name}
    keys = [
        (e["key"], tuple(sorted(e["target"]))) for e in res["vercel"]["env"] if e["project"] == name
    ]
    projects = [p for p in res["supabase"]["projects"] if p["name"] == f"forge-{name}"]
    return {
        "repo": sum(r["name"] == name for r in res["github"]["repos"]),
        "supabase_project": len(projects),
        # secret keys of its project: one (the project's, or the one forge-deploy made)
        "secret_key": sum(k.startswith("sb_secret_") for p in projects for k in p["api_keys"]),
        "vercel_project": len(vercel_ids),
        "deployment": sum(d["project"] == name for d in res["vercel"]["deployments"]),
        # the most times one env var (key and target) is set: 1 when each is set once
        "env_var": max(Counter(keys).values(), default=0),
    }


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def postgres_cluster(root: Path) -> tuple[ManagedCluster, str]:
    """A started PostgreSQL 15 cluster in `root` (the test suite's `ManagedCluster`), and its
    superuser's URL on 127.0.0.1 (a password of its own); the caller stops it."""
    cluster = ManagedCluster(root, "127.0.0.1", free_port("127.0.0.1"))
    server = cluster.start()
    password = secrets.token_hex(12)
    with server.admin() as conn:
        conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
    return cluster, f"postgresql://postgres:{password}@127.0.0.1:{server.port}/postgres"


@contextlib.contextmanager
def world(time_scale: float = 0.005, keep: bool = False) -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="forge-reliability-", dir="/var/tmp"))
    root.chmod(0o755)  # the cluster runs as `postgres`
    cluster, url = postgres_cluster(root / "pg")
    sandbox = SandboxProcess(root / "sandbox", url, time_scale)
    made = World(root, url, sandbox)
    try:
        sandbox.start()
        yield made
    finally:
        made.later.close()
        sandbox.stop()
        cluster.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
