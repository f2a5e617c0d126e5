"""One `forge-dispatcher serve` for the load kinds (burst, soak): its own process (so its RSS
and fds are its own), the process launcher, an SQLite store, the world's sandbox, and a signed
API client; plus the waits both kinds make on many deployments at once."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.reliability.table import Verdict
from bench.reliability.world import EXAMPLE, REPO, World, count_resources, unique_name
from dispatcher.model import TERMINAL
from tests.dispatcher.conftest import Api, dispatcher_env, process_path
from tests.dispatcher.test_e2e_restart import ServeProcess


@dataclass
class Served:
    serve: ServeProcess
    api: Api
    root: Path

    @property
    def pid(self) -> int:
        assert self.serve.process is not None
        return self.serve.process.pid

    def build(self, name: str) -> None:
        """A copy of the example app, build dir `name`, in the dispatcher's builds root."""
        target = self.api.builds_root / name
        if not target.exists():
            shutil.copytree(EXAMPLE, target)

    def statuses(self, limit: int = 500) -> dict[str, dict[str, Any]]:
        """The newest `limit` deployments (the API's most per call), by id."""
        response = self.api.request("GET", f"/v1/deployments?limit={limit}")
        if response.status_code != 200:
            raise RuntimeError(f"list: {response.status_code} {response.text[:300]}")
        return {d["id"]: d for d in response.json()["deployments"]}

    def wait_terminal(self, ids: set[str], timeout_s: float) -> dict[str, dict[str, Any]]:
        """Each of `ids` as last seen: terminal, unless `timeout_s` passed first. One look is
        one list request of the newest len(ids) (the ids are the newest here); one read per id
        the list did not hold."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, dict[str, Any]] = {}
        while True:
            seen = self.statuses(min(500, len(ids)))
            for dep_id in ids:
                if dep_id in seen:
                    last[dep_id] = seen[dep_id]
                elif last.get(dep_id, {}).get("status") not in TERMINAL:
                    last[dep_id] = self.api.get(dep_id)
            self.api.responses.clear()  # Api keeps every answer (for a scan); none here
            if all(last[i]["status"] in TERMINAL for i in ids) or time.monotonic() > deadline:
                return last
            time.sleep(0.5)


def judge_ends(
    served: Served, verdicts: dict[str, Verdict], bound_s: float
) -> dict[str, dict[str, Any]]:
    """Waits up to `bound_s` for the deployments (id -> its verdict) to end: each must end
    `live` (else lost); one still going is stuck, and cancelled so nothing is left running.
    The deployments as they ended."""
    final = served.wait_terminal(set(verdicts), bound_s) if verdicts else {}
    for dep_id, d in final.items():
        verdict = verdicts[dep_id]
        if d["status"] not in TERMINAL:
            verdict.stuck.append(f"{dep_id} still {d['status']} after {bound_s:.0f} s")
            served.api.action(dep_id, "cancel")
        elif d["status"] != "live":
            verdict.lost.append(f"{dep_id} ended {d['status']}: {d.get('error')}")
    if any(d["status"] not in TERMINAL for d in final.values()):
        final.update(served.wait_terminal(set(final), 120))
    return final


def judge_resources(verdict: Verdict, w: World, live: Counter[str]) -> None:
    """One repo, one Supabase project and one Vercel project per project; one Vercel
    deployment per deploy of it that ended live (`live`: project -> deploys)."""
    resources = w.sandbox.resources()
    for project, deployed in sorted(live.items()):
        made = count_resources(resources, project)
        for what in ("repo", "supabase_project", "vercel_project"):
            if made[what] != 1:
                where = verdict.duplicated if made[what] > 1 else verdict.lost
                where.append(f"{project}: {made[what]} {what}")
        if made["deployment"] != deployed:
            where = verdict.duplicated if made["deployment"] > deployed else verdict.lost
            where.append(f"{project}: {made['deployment']} Vercel deployments, {deployed} live")


@contextlib.contextmanager
def serving(w: World, prefix: str, **env: str) -> Iterator[Served]:
    """`forge-dispatcher serve` on a state folder of its own; `env` overrides its environment
    (FORGE_MAX_CONCURRENT, runner knobs). Stopped (SIGTERM) at the end."""
    root = w.root / unique_name(prefix)
    builds, state = root / "builds", root / "state"
    builds.mkdir(parents=True)
    state.mkdir()
    environ = dispatcher_env(
        w.sandbox, builds, state, f"sqlite:///{state / 'dispatcher.db'}", "process"
    )
    environ["FORGE_HOOK_SECRET"] = secrets.token_urlsafe(32)
    environ.update(PATH=process_path(), HOME=str(root), PYTHONPATH=str(REPO), **env)
    serve = ServeProcess(environ, root / "dispatcher.log")
    serve.start()
    try:
        yield Served(serve, Api(serve.url, environ["FORGE_HOOK_SECRET"].encode(), builds), root)
    finally:
        serve.stop()
