"""Every provider call of the pipeline, faulted: transient failures end live with exactly one of
each resource; a permanent 4xx ends failed with the provider's message."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.runner import RunnerProcess
from tests.support.sandbox import SandboxProcess, owned_by

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-app"

pytestmark = [pytest.mark.clis, pytest.mark.postgres]


def calls(name: str) -> list[dict[str, Any]]:
    """The pipeline's provider calls, as fault-rule matchers. `create` marks the creates."""
    ref = "[a-z]{20}"
    return [
        {"service": "github", "method": "GET", "path": f"/repos/[^/]+/{name}$"},
        {"service": "github", "method": "POST", "path": "/orgs/[^/]+/repos$", "create": True},
        {"service": "github", "method": "PUT", "path": f"/repos/[^/]+/{name}/topics$"},
        {"service": "github", "method": "GET", "path": f"/{name}\\.git/info/refs$"},
        {"service": "github", "method": "POST", "path": f"/{name}\\.git/git-receive-pack$"},
        {"service": "supabase", "method": "GET", "path": "^/v1/projects$"},
        {"service": "supabase", "method": "POST", "path": "^/v1/projects$", "create": True},
        {"service": "supabase", "method": "GET", "path": f"^/v1/projects/{ref}/api-keys$"},
        {"service": "supabase", "method": "GET", "path": f"^/v1/projects/{ref}$"},
        {
            "service": "supabase",
            "method": "GET",
            "path": f"^/v1/projects/{ref}/config/database/pooler$",
        },
        {
            "service": "supabase",
            "method": "GET",
            "path": f"^/v1/projects/{ref}/database/migrations$",
        },
        {"service": "vercel", "method": "GET", "path": f"^/v9/projects/{name}$"},
        {"service": "vercel", "method": "POST", "path": "^/v11/projects$", "create": True},
        {"service": "vercel", "method": "POST", "path": "^/v10/projects/[^/]+/env$"},
        {"service": "vercel", "method": "POST", "path": "^/v13/deployments$", "create": True},
        {"service": "vercel", "method": "POST", "path": "^/v2/files$"},
        {"service": "vercel", "method": "GET", "path": "^/v13/deployments/[^/]+$"},
        {"service": "vercel", "method": "POST", "path": "^/v10/projects/[^/]+/promote/[^/]+$"},
        {"service": "apps", "method": "GET", "path": f"^/p/{name}/"},
        {"service": "apps", "method": "GET", "path": "^/sb/[a-z]+/rest/v1/?$"},
    ]


FAULTS = {
    "503-twice": {"action": "status", "status": 503, "times": 2},
    "429-retry-after": {"action": "status", "status": 429, "retry_after": 1, "times": 1},
    "reset": {"action": "reset", "times": 1},
    "ambiguous-create": {"action": "timeout_after_success", "times": 1},
}


def rules(name: str, fault: str) -> list[dict[str, Any]]:
    chosen = []
    for call in calls(name):
        if fault == "ambiguous-create" and not call.get("create"):
            continue
        chosen.append({k: v for k, v in call.items() if k != "create"} | FAULTS[fault])
    return chosen


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_transient_faults_on_every_call_end_live_with_one_of_each(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path, fault: str
) -> None:
    name = f"f{fault[:3]}-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    (build / "public" / "build.txt").write_text(name)  # one file Vercel has never seen: an upload
    sandbox.set_faults(rules(name, fault))
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    book = sandbox.admin("GET", "faults").json()
    assert result.returncode == 0, result.explain()
    assert result.eof.payload["outcome"] == "live"
    unhit = [f"{r['method']} {r['path']}" for r in book if r["hits"] == 0]
    assert not unhit, f"these calls were never made (so never faulted): {unhit}"
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 1, "vercel": 1, "deployments": 1}
    versions = [
        m["version"]
        for p in sandbox.resources()["supabase"]["projects"]
        if p["name"] == f"forge-{name}"
        for m in p["migrations"]
    ]
    assert versions == ["20250101000000", "20250102000000"]


@pytest.mark.parametrize(
    ("service", "method", "path", "status"),
    [
        ("github", "POST", "/orgs/[^/]+/repos$", 403),
        ("supabase", "POST", "^/v1/projects$", 402),
        ("vercel", "POST", "^/v13/deployments$", 400),
    ],
)
def test_a_permanent_4xx_fails_with_the_providers_message(
    sandbox: SandboxProcess,
    forge_runner: RunnerProcess,
    unique: str,
    tmp_path: Path,
    service: str,
    method: str,
    path: str,
    status: int,
) -> None:
    name = f"perm-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    sandbox.set_faults(
        [{"service": service, "method": method, "path": path, "action": "status", "status": status}]
    )
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    assert result.returncode == 1, result.explain()
    assert result.eof.payload == {"outcome": "failed", "exit_code": 1}
    error = result.result["error"]
    assert f"{service} {status}" in error and "fault injected by the sandbox" in error


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("github", "/orgs/[^/]+/repos$"),
        ("supabase", "^/v1/projects$"),
        ("vercel", "^/v11/projects$"),
        ("vercel", "^/v13/deployments$"),
    ],
)
def test_a_create_served_after_the_client_gave_up_is_found_not_doubled(
    sandbox: SandboxProcess,
    forge_runner: RunnerProcess,
    runner_env: dict[str, str],
    unique: str,
    tmp_path: Path,
    service: str,
    path: str,
) -> None:
    """The server is slow: it starts the create only after the runner's HTTP timeout. The runner
    looks before it creates again, and keeps looking while the lost create may still land."""
    name = f"late-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    late = float(runner_env["FORGE_HTTP_TIMEOUT_S"]) + 1.5
    sandbox.set_faults(
        [
            {
                "service": service,
                "method": "POST",
                "path": path,
                "action": "delay",
                "delay_s": late,
                "times": 1,
            }
        ]
    )
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    assert sandbox.admin("GET", "faults").json()[0]["hits"] == 1
    assert result.returncode == 0, result.explain()
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 1, "vercel": 1, "deployments": 1}


def test_a_refused_supabase_rest_check_is_checked_again_not_answered_with_a_new_build(
    sandbox: SandboxProcess, forge_runner: RunnerProcess, unique: str, tmp_path: Path
) -> None:
    """Found by bench/reliability: one 403 from the Supabase REST endpoint made the runner
    rebuild the Vercel app (a second deployment) although the app answered fine."""
    name = f"rest-{unique}"
    build = tmp_path / "app"
    shutil.copytree(EXAMPLE, build)
    sandbox.set_faults(
        [
            {
                "service": "apps",
                "method": "GET",
                "path": "^/sb/[a-z]+/rest/v1/?$",
                "action": "status",
                "status": 403,
                "times": 1,
            }
        ]
    )
    result = forge_runner.run(["deploy", "--build-dir", str(build), "--name", name])
    assert sandbox.admin("GET", "faults").json()[0]["hits"] == 1
    assert result.returncode == 0, result.explain()
    assert owned_by(sandbox, name) == {"repos": 1, "supabase": 1, "vercel": 1, "deployments": 1}
    # The report counts the re-check apart from new builds (the fault matrix's oracle adds
    # `redeploys` to the deployments it expects: counted together, it expected one too many).
    health = result.result["health"]
    assert (health["redeploys"], health["rechecks"]) == (0, 1), health
